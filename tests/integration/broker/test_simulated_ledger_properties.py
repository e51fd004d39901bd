"""Property: whatever buys and sells a run makes, the simulated account adds up after every
call — cash moves by exactly the fills, positions hold what was bought less what was sold, equity
is cash plus market value, and a refused order changes nothing."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.broker import (
    InsufficientBuyingPowerError,
    InsufficientQtyAvailableError,
    OrderRequest,
    OrderType,
)
from shared.trading import Side
from tests.integration.broker.simulated_world import migrated_sqlite, new_broker, sim_settings

STARTING_CASH = Decimal("3000")
SPY_BID, SPY_ASK, SPY_LAST = Decimal("599.70"), Decimal("600.30"), Decimal("600.0000")

orders = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.sampled_from([Decimal("0.5"), Decimal("1"), Decimal("2"), Decimal("3.25")]),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders)
async def test_the_account_adds_up_after_every_order(
    sequence: list[tuple[Side, Decimal]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        broker = new_broker(
            await migrated_sqlite(Path(folder)),
            settings=sim_settings(sim_starting_cash=STARTING_CASH),
        )
        cash, held = STARTING_CASH, Decimal(0)
        try:
            for n, (side, qty) in enumerate(sequence):
                request = OrderRequest(
                    symbol="SPY",
                    side=side,
                    qty=qty,
                    order_type=OrderType.MARKET,
                    client_order_id=f"alc:prop:SPY:{side.lower()[0]}:{n}:1",
                )
                try:
                    await broker.submit_order(request)
                except (InsufficientBuyingPowerError, InsufficientQtyAvailableError):
                    refused = True
                else:
                    refused = False
                if side is Side.BUY:
                    assert refused == (qty * SPY_ASK > cash)
                    if not refused:
                        cash, held = cash - qty * SPY_ASK, held + qty
                else:
                    assert refused == (qty > held)
                    if not refused:
                        cash, held = cash + qty * SPY_BID, held - qty

                account = await broker.get_account()
                position = await broker.get_position("SPY")
                held_value = (held * SPY_LAST).quantize(Decimal("0.01"))
                assert account.cash == cash >= 0
                assert account.buying_power == cash
                assert account.equity == account.portfolio_value == cash + held_value
                if held == 0:
                    assert position is None
                else:
                    assert position is not None
                    assert position.qty == position.qty_available == held
                    assert position.market_value == held_value
        finally:
            await broker.close()
