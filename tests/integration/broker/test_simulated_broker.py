"""The simulated world beyond the common contract
(docs/trading-rules.md, Simulated orders / Test scenarios): prices from the bar store, the fill
models, latency, the session, and state that lives in the database."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.execution.pricing import initial_limit_price
from shared.broker import (
    DuplicateClientOrderIdError,
    InsufficientQtyAvailableError,
    InvalidOrderError,
    OrderRequest,
    OrderStatus,
    OrderType,
)
from shared.broker.simulated import QuoteShape, Scenario, SimulatedBroker, SymbolFill
from shared.broker.simulated.fills import rejected_by_rate
from shared.broker.simulated.tables import sim_accounts, sim_fills, sim_orders, sim_positions
from shared.eventstore.engine import create_store_engine
from shared.eventstore.migrations import upgrade
from shared.market_clock import NEW_YORK
from shared.marketdata.bars import BarSnapshot
from shared.trading import Side
from tests.integration.broker.simulated_world import (
    HOLIDAY_SIM_NOW,
    SESSIONS,
    SPY_CLOSES,
    RecordedSleep,
    bars,
    migrated_database,
    migrated_sqlite,
    new_broker,
    sim_settings,
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async for url in migrated_database(request.param, tmp_path):
        yield url


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    return await migrated_sqlite(tmp_path)


def market(symbol: str, side: Side, qty: str, client_order_id: str) -> OrderRequest:
    return OrderRequest(
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        order_type=OrderType.MARKET,
        client_order_id=client_order_id,
    )


def limit(symbol: str, side: Side, qty: str, price: str, client_order_id: str) -> OrderRequest:
    return OrderRequest(
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        order_type=OrderType.LIMIT,
        limit_price=Decimal(price),
        client_order_id=client_order_id,
    )


# ---------------------------------------------------------------------- state in the database


async def test_state_survives_a_new_broker_instance(database_url: str) -> None:
    first = new_broker(database_url)
    bought = await first.submit_order(market("SPY", Side.BUY, "10", "alc:w1:SPY:b:1:1"))
    await first.close()

    second = new_broker(database_url)
    try:
        account = await second.get_account()
        position = await second.get_position("SPY")
        order = await second.get_order_by_client_id("alc:w1:SPY:b:1:1")
    finally:
        await second.close()

    assert account.cash == Decimal("100000") - Decimal("6003.00")
    assert position is not None and position.qty == Decimal("10")
    assert order is not None and order.order_id == bought.order_id
    assert order.status is OrderStatus.FILLED


async def test_each_account_starts_with_the_starting_cash_on_its_own(sqlite_url: str) -> None:
    settings = sim_settings(sim_starting_cash=Decimal("25000"))
    alice = new_broker(sqlite_url, "alice", settings=settings)
    bob = new_broker(sqlite_url, "bob", settings=settings)
    try:
        await alice.submit_order(market("SPY", Side.BUY, "1", "alc:w1:SPY:b:1:1"))
        alice_account, bob_account = await alice.get_account(), await bob.get_account()
        bob_positions = await bob.get_positions()
    finally:
        await alice.close()
        await bob.close()

    assert alice_account.cash == Decimal("25000") - Decimal("600.30")
    assert bob_account.cash == Decimal("25000")
    assert bob_positions == []


async def test_concurrent_fills_on_one_account_lose_no_update(database_url: str) -> None:
    brokers = [new_broker(database_url, "shared") for _ in range(2)]
    try:
        await asyncio.gather(
            *(
                broker.submit_order(market("SPY", Side.BUY, "1", f"alc:w1:SPY:b:{n}:{i}"))
                for n, broker in enumerate(brokers)
                for i in range(5)
            )
        )
        account = await brokers[0].get_account()
        position = await brokers[1].get_position("SPY")
    finally:
        for broker in brokers:
            await broker.close()

    assert position is not None and position.qty == Decimal("10")
    assert account.cash == Decimal("100000") - 10 * Decimal("600.30")
    assert account.equity == account.cash + Decimal("6000.00")


async def test_each_call_reads_the_account_once_and_writes_only_what_changed(
    database_url: str,
) -> None:
    """The statements per call (docs/performance.md, Where the time goes): the lock reads what
    the call needs first, the rest is read once, and nothing is read back after a write."""
    engine = create_store_engine(database_url, pool_size=1)
    statements: list[str] = []

    @sa.event.listens_for(engine.sync_engine, "before_cursor_execute")
    def record(*arguments: Any) -> None:
        statement = arguments[2]
        if "sim_" in statement:
            statements.append(" ".join(statement.split()[:4]))

    broker = SimulatedBroker(
        database_url, "default", sim_settings(), bars(), sleep=RecordedSleep(), engine=engine
    )
    try:
        counts = []
        for call in (
            broker.get_account,
            lambda: broker.get_order_by_client_id("alc:w1:SPY:b:1:1"),
            lambda: broker.submit_order(market("SPY", Side.BUY, "10", "alc:w1:SPY:b:1:1")),
            lambda: broker.get_order_by_client_id("alc:w1:SPY:b:1:1"),
            broker.get_account,
            broker.get_positions,
            broker.get_open_orders,
        ):
            await call()
            counts.append(len(statements))
            statements.clear()
    finally:
        await engine.dispose()

    # the first call opens the account (lock finds nothing, insert, lock again); a look-up of an
    # order never placed is one read without the lock; the submission then reads the positions
    # and writes the order (filled), its fill, the cash and the position — on PostgreSQL by one
    # statement; a look-up that finds the order reads it, then locks the account with it to
    # advance it
    writes = 1 if database_url.startswith("postgresql") else 4
    assert counts == [4, 1, 2 + writes, 2, 2, 2, 1]


async def test_a_duplicate_client_order_id_never_makes_a_second_order(database_url: str) -> None:
    brokers = [new_broker(database_url, "shared") for _ in range(2)]
    request = market("SPY", Side.BUY, "2", "alc:w1:SPY:b:1:1")
    try:
        orders = await asyncio.gather(*(broker.submit_order(request) for broker in brokers * 3))
        account = await brokers[0].get_account()
        position = await brokers[0].get_position("SPY")
    finally:
        for broker in brokers:
            await broker.close()

    assert len({order.order_id for order in orders}) == 1
    assert position is not None and position.qty == Decimal("2")
    assert account.cash == Decimal("100000") - Decimal("1200.60")


async def test_a_client_order_id_reused_for_another_order_is_refused(sqlite_url: str) -> None:
    broker = new_broker(sqlite_url)
    try:
        await broker.submit_order(market("SPY", Side.BUY, "1", "alc:w1:SPY:b:1:1"))
        with pytest.raises(
            DuplicateClientOrderIdError, match=r"alc:w1:SPY:b:1:1: .*different order \(buy SPY"
        ):
            await broker.submit_order(market("QQQ", Side.BUY, "1", "alc:w1:SPY:b:1:1"))
    finally:
        await broker.close()


# ---------------------------------------------------------------------- prices from the bar store


async def test_the_quote_straddles_the_last_close_rounded_outwards_to_the_cent(
    sqlite_url: str,
) -> None:
    broker = new_broker(sqlite_url, settings=sim_settings(sim_now="2024-11-25T15:45:00"))
    try:
        quote = await broker.get_latest_quote("spy")
        trade = await broker.get_latest_trade("SPY")
    finally:
        await broker.close()

    assert quote is not None
    assert (quote.bid, quote.ask) == (Decimal("596.95"), Decimal("597.55"))
    assert (quote.bid_size, quote.ask_size) == (Decimal(100), Decimal(100))
    assert quote.as_of == dt.datetime(2024, 11, 25, 15, 45, tzinfo=NEW_YORK)
    assert trade is not None and trade.price == Decimal("597.25")


async def test_the_last_price_is_the_latest_bar_on_or_before_the_simulated_date(
    sqlite_url: str,
) -> None:
    broker = new_broker(sqlite_url, settings=sim_settings(sim_spread_bps=Decimal(0)))
    try:
        quote = await broker.get_latest_quote("QQQ")
    finally:
        await broker.close()

    assert quote is not None and quote.bid == quote.ask == Decimal("503.00")


async def test_every_bar_store_symbol_is_a_tradable_fractionable_asset(sqlite_url: str) -> None:
    broker = new_broker(sqlite_url)
    try:
        spy = await broker.get_asset("SPY")
        unknown = await broker.get_asset("NOPE")
        unknown_quote = await broker.get_latest_quote("NOPE")
        unknown_trade = await broker.get_latest_trade("NOPE")
    finally:
        await broker.close()

    assert spy is not None and (spy.tradable, spy.fractionable) == (True, True)
    assert unknown is None and unknown_quote is None and unknown_trade is None


async def test_an_order_for_a_symbol_without_bars_names_the_symbol(sqlite_url: str) -> None:
    broker = new_broker(sqlite_url)
    try:
        with pytest.raises(InvalidOrderError, match="asset NOPE is not known"):
            await broker.submit_order(market("NOPE", Side.BUY, "1", "alc:w1:NOPE:b:1:1"))
    finally:
        await broker.close()


@pytest.mark.parametrize(
    ("shape", "bid", "ask"),
    [
        (QuoteShape.ONE_SIDED, "0", "600.30"),
        (QuoteShape.INVERTED, "600.30", "599.70"),
        (QuoteShape.ZERO, "0", "0"),
        (QuoteShape.WIDE, "540.00", "660.00"),
        (QuoteShape.STALE, "599.70", "600.30"),
    ],
)
async def test_a_scenario_bends_the_quote_into_the_shape_asked_for(
    sqlite_url: str, shape: QuoteShape, bid: str, ask: str
) -> None:
    broker = new_broker(sqlite_url, scenario=Scenario(quote_shapes={"SPY": shape}))
    try:
        quote = await broker.get_latest_quote("SPY")
        clock = await broker.get_clock()
    finally:
        await broker.close()

    assert quote is not None and (quote.bid, quote.ask) == (Decimal(bid), Decimal(ask))
    assert (quote.as_of < clock.now) == (shape is QuoteShape.STALE)


async def test_a_missing_quote_shape_gives_no_quote(sqlite_url: str) -> None:
    broker = new_broker(sqlite_url, scenario=Scenario(quote_shapes={"SPY": QuoteShape.MISSING}))
    try:
        assert await broker.get_latest_quote("SPY") is None
    finally:
        await broker.close()


# ---------------------------------------------------------------------- fill models


async def test_immediate_fills_a_market_sell_at_the_bid_and_credits_cash_at_once(
    sqlite_url: str,
) -> None:
    broker = new_broker(sqlite_url)
    try:
        await broker.submit_order(market("SPY", Side.BUY, "3", "alc:w1:SPY:b:1:1"))
        sold = await broker.submit_order(market("SPY", Side.SELL, "1", "alc:w1:SPY:s:1:1"))
        account = await broker.get_account()
        position = await broker.get_position("SPY")
    finally:
        await broker.close()

    assert sold.status is OrderStatus.FILLED and sold.filled_avg_price == Decimal("599.70")
    assert account.cash == Decimal("100000") - 3 * Decimal("600.30") + Decimal("599.70")
    assert account.buying_power == account.cash
    assert position is not None and position.qty == Decimal("2")
    assert position.avg_entry_price == Decimal("600.30")
    assert account.equity == account.cash + position.market_value


async def test_touch_fills_a_limit_inside_the_spread_at_the_far_touch_and_leaves_one_below(
    sqlite_url: str,
) -> None:
    """SPY's quote is 599.70 / 600.30 (docs/trading-rules.md, Fill models)."""
    broker = new_broker(sqlite_url)
    try:
        inside = await broker.submit_order(
            limit("SPY", Side.BUY, "2", "599.71", "alc:w1:SPY:b:1:1")
        )
        sold = await broker.submit_order(limit("SPY", Side.SELL, "1", "600.29", "alc:w1:SPY:s:1:1"))
        below = await broker.submit_order(limit("SPY", Side.BUY, "1", "590.00", "alc:w1:SPY:b:2:1"))
        account = await broker.get_account()
    finally:
        await broker.close()

    assert (inside.status, inside.filled_avg_price) == (OrderStatus.FILLED, Decimal("600.30"))
    assert (sold.status, sold.filled_avg_price) == (OrderStatus.FILLED, Decimal("599.70"))
    assert (below.status, below.broker_status, below.filled_qty) == (OrderStatus.ACCEPTED, "new", 0)
    assert account.cash == Decimal("100000") - 2 * Decimal("600.30") + Decimal("599.70")


async def test_immediate_fills_any_limit_at_its_limit_price(sqlite_url: str) -> None:
    broker = new_broker(sqlite_url, settings=sim_settings(sim_fill_model="immediate"))
    try:
        order = await broker.submit_order(
            limit("SPY", Side.BUY, "0.5", "590.00", "alc:w1:SPY:b:1:1")
        )
    finally:
        await broker.close()

    assert order.status is OrderStatus.FILLED
    assert (order.filled_qty, order.filled_avg_price) == (Decimal("0.5"), Decimal("590.00"))


@pytest.mark.parametrize("spread_bps", ["10", "50"])
async def test_a_rebalance_at_an_unchanged_market_never_shows_a_gain(
    sqlite_url: str, spread_bps: str
) -> None:
    """The default fill model against execution's own limit prices (one cent inside the touch):
    buying, then selling part back, at one standing market never raises the account's equity
    (docs/trading-rules.md, Fill models)."""
    broker = new_broker(sqlite_url, settings=sim_settings(sim_spread_bps=Decimal(spread_bps)))
    try:
        equities = [(await broker.get_account()).equity]
        for number, (side, qty) in enumerate([(Side.BUY, "40"), (Side.SELL, "15")], start=1):
            quote = await broker.get_latest_quote("SPY")
            assert quote is not None
            price = initial_limit_price(side, quote)
            assert price is not None and quote.bid < price < quote.ask
            tag = "b" if side is Side.BUY else "s"
            order = await broker.submit_order(
                limit("SPY", side, qty, str(price), f"alc:w1:SPY:{tag}:{number}:1")
            )
            assert order.status is OrderStatus.FILLED
            equities.append((await broker.get_account()).equity)
    finally:
        await broker.close()

    assert equities[1] < equities[0]
    assert equities[2] <= equities[1]


async def test_partial_fills_a_share_of_the_remainder_per_poll_until_done(sqlite_url: str) -> None:
    settings = sim_settings(sim_fill_model="partial", sim_partial_fraction=Decimal("0.5"))
    broker = new_broker(sqlite_url, settings=settings)
    try:
        placed = await broker.submit_order(market("SPY", Side.BUY, "10", "alc:w1:SPY:b:1:1"))
        polls = [await broker.get_order(placed.order_id) for _ in range(5)]
        account = await broker.get_account()
    finally:
        await broker.close()

    assert placed.status is OrderStatus.ACCEPTED and placed.filled_qty == 0
    filled = [order.filled_qty for order in polls if order is not None]
    assert filled == [Decimal(5), Decimal(7), Decimal(8), Decimal(9), Decimal(10)]
    assert [order.status for order in polls if order is not None][-2:] == [
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
    ]
    assert account.cash == Decimal("100000") - 10 * Decimal("600.30")


async def test_a_partially_filled_buy_holds_buying_power_for_its_remainder(
    sqlite_url: str,
) -> None:
    settings = sim_settings(sim_fill_model="partial", sim_partial_fraction=Decimal("0.5"))
    broker = new_broker(sqlite_url, settings=settings)
    try:
        placed = await broker.submit_order(market("SPY", Side.BUY, "10", "alc:w1:SPY:b:1:1"))
        await broker.get_order(placed.order_id)
        account = await broker.get_account()
    finally:
        await broker.close()

    assert account.cash == Decimal("100000") - 5 * Decimal("600.30")
    assert account.buying_power == account.cash - 5 * Decimal("600.30")


async def test_reject_rate_rejects_the_same_share_of_client_order_ids_every_time(
    tmp_path: Path,
) -> None:
    client_order_ids = [f"alc:w{n}:SPY:b:1:1" for n in range(40)]
    expected = [cid for cid in client_order_ids if rejected_by_rate(cid, Decimal("0.5"))]
    settings = sim_settings(sim_fill_model="reject-rate", sim_reject_rate=Decimal("0.5"))
    runs = []
    for run in range(2):
        (tmp_path / str(run)).mkdir()
        broker = new_broker(await migrated_sqlite(tmp_path / str(run)), settings=settings)
        try:
            orders = [
                await broker.submit_order(market("SPY", Side.BUY, "0.01", cid))
                for cid in client_order_ids
            ]
        finally:
            await broker.close()
        runs.append([o.client_order_id for o in orders if o.status is OrderStatus.REJECTED])

    assert runs[0] == runs[1] == expected
    assert 5 < len(expected) < 35


async def test_reject_rate_keeps_a_rejected_order_under_its_client_order_id(
    sqlite_url: str,
) -> None:
    settings = sim_settings(sim_fill_model="reject-rate", sim_reject_rate=Decimal(1))
    broker = new_broker(sqlite_url, settings=settings)
    try:
        first = await broker.submit_order(market("SPY", Side.BUY, "1", "alc:w1:SPY:b:1:1"))
        again = await broker.submit_order(market("SPY", Side.BUY, "1", "alc:w1:SPY:b:1:1"))
        account = await broker.get_account()
    finally:
        await broker.close()

    assert first.status is OrderStatus.REJECTED and first.broker_status == "rejected"
    assert again.order_id == first.order_id
    assert account.cash == Decimal("100000")


async def test_the_close_model_quotes_fills_and_values_at_the_sessions_close_unrounded(
    sqlite_url: str,
) -> None:
    close = Decimal("600.123456789")
    closes = BarSnapshot.from_closes(SESSIONS, {"SPY": [*SPY_CLOSES[:-1], float(close)]})
    settings = sim_settings(sim_fill_model="close")
    broker = SimulatedBroker(sqlite_url, "default", settings, closes, sleep=RecordedSleep())
    try:
        quote = await broker.get_latest_quote("SPY")
        trade = await broker.get_latest_trade("SPY")
        await broker.submit_order(limit("SPY", Side.BUY, "2.5", "601.00", "alc:w1:SPY:b:1:1"))
        await broker.submit_order(market("SPY", Side.SELL, "1", "alc:w1:SPY:s:1:1"))
        account = await broker.get_account()
        position = await broker.get_position("SPY")
    finally:
        await broker.close()

    assert quote is not None and trade is not None
    assert quote.bid == quote.ask == trade.price == close
    assert account.cash == Decimal(100000) - Decimal("1.5") * close
    assert position is not None and position.market_value == Decimal("1.5") * close
    assert account.equity == account.portfolio_value == Decimal(100000)


# ---------------------------------------------------------------------- the session and latency


async def test_orders_outside_the_session_stay_accepted(sqlite_url: str) -> None:
    broker = new_broker(sqlite_url, settings=sim_settings(sim_now=HOLIDAY_SIM_NOW))
    try:
        placed = await broker.submit_order(market("SPY", Side.BUY, "1", "alc:w1:SPY:b:1:1"))
        polled = await broker.get_order(placed.order_id)
        open_orders = await broker.get_open_orders()
        clock = await broker.get_clock()
        account = await broker.get_account()
    finally:
        await broker.close()

    assert placed.status is OrderStatus.ACCEPTED and placed.broker_status == "accepted"
    assert polled is not None and polled.status is OrderStatus.ACCEPTED
    assert [o.order_id for o in open_orders] == [placed.order_id]
    assert clock.is_open is False
    assert clock.next_open == dt.datetime(2024, 11, 29, 9, 30, tzinfo=NEW_YORK)
    assert account.cash == Decimal("100000")
    assert account.buying_power == Decimal("100000") - Decimal("600.30")


async def test_an_accepted_order_fills_once_the_clock_reaches_the_session(sqlite_url: str) -> None:
    now = [dt.datetime(2024, 11, 27, 8, 0, tzinfo=NEW_YORK)]
    broker = SimulatedBroker(
        sqlite_url, "default", sim_settings(), bars(), clock=lambda: now[0], sleep=RecordedSleep()
    )
    try:
        placed = await broker.submit_order(market("SPY", Side.BUY, "1", "alc:w1:SPY:b:1:1"))
        now[0] = dt.datetime(2024, 11, 27, 9, 31, tzinfo=NEW_YORK)
        polled = await broker.get_order(placed.order_id)
    finally:
        await broker.close()

    assert placed.status is OrderStatus.ACCEPTED
    assert polled is not None and polled.status is OrderStatus.FILLED
    assert polled.updated_at == now[0]


async def test_every_call_waits_the_configured_latency(sqlite_url: str) -> None:
    sleep = RecordedSleep()
    broker = new_broker(sqlite_url, settings=sim_settings(sim_latency_ms=250), sleep=sleep)
    try:
        await broker.get_account()
        await broker.get_latest_quote("SPY")
        await broker.submit_order(market("SPY", Side.BUY, "1", "alc:w1:SPY:b:1:1"))
        await broker.get_clock()
    finally:
        await broker.close()

    assert sleep.delays_s == [0.25, 0.25, 0.25, 0.25]


async def test_no_latency_means_no_waiting(sqlite_url: str) -> None:
    sleep = RecordedSleep()
    broker = new_broker(sqlite_url, sleep=sleep)
    try:
        await broker.get_account()
    finally:
        await broker.close()

    assert sleep.delays_s == []


# ---------------------------------------------------------------------- refusals


async def test_a_sell_above_holdings_says_what_is_available(sqlite_url: str) -> None:
    scenario = Scenario()
    broker = new_broker(sqlite_url, scenario=scenario)
    try:
        await broker.submit_order(market("SPY", Side.BUY, "5", "alc:w1:SPY:b:1:1"))
        scenario.fills["SPY"] = SymbolFill.NEVER
        await broker.submit_order(limit("SPY", Side.SELL, "2", "700", "alc:w1:SPY:s:1:1"))
        with pytest.raises(InsufficientQtyAvailableError) as refused:
            await broker.submit_order(market("SPY", Side.SELL, "4", "alc:w1:SPY:s:1:2"))
    finally:
        await broker.close()

    assert "insufficient qty available for order (requested: 4, available: 3)" in str(refused.value)
    assert refused.value.http_status == 403


async def test_sell_proceeds_reach_buying_power_after_the_settlement_reads(
    sqlite_url: str,
) -> None:
    scenario = Scenario()
    broker = new_broker(sqlite_url, scenario=scenario)
    try:
        await broker.submit_order(market("SPY", Side.BUY, "3", "alc:w1:SPY:b:1:1"))
        scenario.settlement_reads = 2
        await broker.submit_order(market("SPY", Side.SELL, "1", "alc:w1:SPY:s:1:1"))
        reads = [await broker.get_account() for _ in range(3)]
    finally:
        await broker.close()

    cash = Decimal("100000") - 3 * Decimal("600.30") + Decimal("599.70")
    assert [account.cash for account in reads] == [cash] * 3
    assert [account.buying_power for account in reads] == [
        cash - Decimal("599.70"),
        cash - Decimal("599.70"),
        cash,
    ]


async def test_a_day_order_still_working_at_the_close_expires(sqlite_url: str) -> None:
    now = [dt.datetime(2024, 11, 27, 15, 59, tzinfo=NEW_YORK)]
    broker = SimulatedBroker(
        sqlite_url,
        "default",
        sim_settings(),
        bars(),
        scenario=Scenario(fills={"SPY": SymbolFill.NEVER}),
        clock=lambda: now[0],
        sleep=RecordedSleep(),
    )
    try:
        placed = await broker.submit_order(limit("SPY", Side.BUY, "1", "500", "alc:w1:SPY:b:1:1"))
        now[0] = dt.datetime(2024, 11, 27, 16, 0, tzinfo=NEW_YORK)
        polled = await broker.get_order(placed.order_id)
        account = await broker.get_account()
    finally:
        await broker.close()

    assert placed.status is OrderStatus.ACCEPTED
    assert polled is not None
    assert (polled.status, polled.broker_status) == (OrderStatus.REJECTED, "expired")
    assert account.buying_power == Decimal("100000")


async def test_an_order_placed_on_a_holiday_works_until_the_next_sessions_close(
    sqlite_url: str,
) -> None:
    now = [dt.datetime(2024, 11, 28, 15, 45, tzinfo=NEW_YORK)]
    broker = SimulatedBroker(
        sqlite_url,
        "default",
        sim_settings(),
        bars(),
        scenario=Scenario(fills={"SPY": SymbolFill.NEVER}),
        clock=lambda: now[0],
        sleep=RecordedSleep(),
    )
    try:
        placed = await broker.submit_order(limit("SPY", Side.BUY, "1", "500", "alc:w1:SPY:b:1:1"))
        now[0] = dt.datetime(2024, 11, 29, 12, 59, tzinfo=NEW_YORK)
        before_the_early_close = await broker.get_order(placed.order_id)
        now[0] = dt.datetime(2024, 11, 29, 13, 0, tzinfo=NEW_YORK)
        at_the_early_close = await broker.get_order(placed.order_id)
    finally:
        await broker.close()

    assert before_the_early_close is not None
    assert before_the_early_close.status is OrderStatus.ACCEPTED
    assert at_the_early_close is not None and at_the_early_close.broker_status == "expired"


async def test_from_settings_uses_the_installations_database(sqlite_url: str) -> None:
    settings = sim_settings(database_url=sqlite_url)
    writer = SimulatedBroker.from_settings(settings, "default", bars(), sleep=RecordedSleep())
    try:
        await writer.submit_order(market("SPY", Side.BUY, "1", "alc:w1:SPY:b:1:1"))
    finally:
        await writer.close()

    reader = new_broker(sqlite_url)
    try:
        order = await reader.get_order_by_client_id("alc:w1:SPY:b:1:1")
    finally:
        await reader.close()

    assert order is not None and order.status is OrderStatus.FILLED


@pytest.mark.integration
async def test_a_look_up_of_an_order_never_placed_opens_no_transaction_on_postgresql(
    postgres_url: str,
) -> None:
    """One round trip, not BEGIN, the locked read and COMMIT; the account is not even opened
    (docs/performance.md, Statements per workflow)."""
    await upgrade(postgres_url)
    engine = create_store_engine(postgres_url, pool_size=1)
    sent: list[str] = []

    @sa.event.listens_for(engine.sync_engine, "connect")
    def log_transactions(dbapi_connection: Any, _record: Any) -> None:
        # BEGIN and COMMIT go to the driver directly; SQLAlchemy's statements are seen below
        dbapi_connection.driver_connection.add_query_logger(lambda r: sent.append(r.query))

    @sa.event.listens_for(engine.sync_engine, "before_cursor_execute")
    def log_statements(*arguments: Any) -> None:
        sent.append(arguments[2])

    async with engine.connect() as warm:  # the connection's own set-up queries come first
        await warm.execute(sa.text("SELECT 1"))
    broker = SimulatedBroker(
        postgres_url, "lookups", sim_settings(), bars(), sleep=RecordedSleep(), engine=engine
    )
    try:
        sent.clear()
        assert await broker.get_order_by_client_id("alc:w1:SPY:b:1:1") is None
        looked_up = list(sent)
        placed = await broker.submit_order(market("SPY", Side.BUY, "1", "alc:w1:SPY:b:1:1"))
        found = await broker.get_order_by_client_id("alc:w1:SPY:b:1:1")
    finally:
        await engine.dispose()

    assert [" ".join(query.split()[:4]) for query in looked_up] == [
        "SELECT sim_orders.id FROM sim_orders"
    ]
    assert found is not None and found.order_id == placed.order_id


async def _trading_day(database_url: str, settings_overrides: dict[str, Any]) -> dict[str, Any]:
    """A day that places, fills in parts, cancels, opens, adds to and closes positions; the
    rows it leaves, keyed by what does not depend on the generated order ids."""
    broker = new_broker(database_url, settings=sim_settings(**settings_overrides))
    try:
        for request in (
            market("SPY", Side.BUY, "3", "alc:w1:SPY:b:1:1"),
            market("QQQ", Side.BUY, "4", "alc:w1:QQQ:b:1:1"),
        ):
            placed = await broker.submit_order(request)
            for _ in range(5):
                await broker.get_order(placed.order_id)
        working = await broker.submit_order(
            limit("SPY", Side.BUY, "1", "590.00", "alc:w1:SPY:b:2:1")
        )
        await broker.get_order(working.order_id)
        await broker.cancel_order(working.order_id)
        sold = await broker.submit_order(market("SPY", Side.SELL, "1", "alc:w1:SPY:s:1:1"))
        for _ in range(3):
            await broker.get_order(sold.order_id)
        await broker.close_position("QQQ")
        await broker.get_open_orders()
    finally:
        await broker.close()
    engine = create_store_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            ids = dict(
                (await connection.execute(sa.select(sim_orders.c.order_id, sim_orders.c.id))).all()
            )
            orders = (
                await connection.execute(sa.select(sim_orders).order_by(sim_orders.c.id))
            ).all()
            fills = (await connection.execute(sa.select(sim_fills).order_by(sim_fills.c.id))).all()
            positions = (
                await connection.execute(sa.select(sim_positions).order_by(sim_positions.c.symbol))
            ).all()
            cash = (await connection.execute(sa.select(sim_accounts.c.cash))).scalar_one()
    finally:
        await engine.dispose()
    return {
        # a position is closed under a client order id of the broker's own (a UUID)
        "orders": [
            row._asdict()
            | {"order_id": None}
            | ({} if row.client_order_id.startswith("alc:") else {"client_order_id": None})
            for row in orders
        ],
        "fills": [{**row._asdict(), "order_id": ids[row.order_id]} for row in fills],
        "positions": [row._asdict() for row in positions],
        "cash": cash,
    }


@pytest.mark.integration
@pytest.mark.parametrize(
    "overrides",
    [{}, {"sim_fill_model": "partial", "sim_partial_fraction": Decimal("0.5")}],
    ids=["touch", "partial"],
)
async def test_postgresql_s_one_statement_flush_leaves_the_rows_sqlite_s_statements_leave(
    tmp_path: Path, overrides: dict[str, Any]
) -> None:
    """On PostgreSQL a call's writes go as one statement; the same calls must leave the same
    orders, fills, positions and cash (docs/performance.md, Statements per workflow)."""
    days = {}
    for backend in ("sqlite", "postgresql"):
        (tmp_path / backend).mkdir()
        async for url in migrated_database(backend, tmp_path / backend):
            days[backend] = await _trading_day(url, overrides)

    assert len(days["sqlite"]["orders"]) == 5
    assert days["sqlite"]["fills"] and days["sqlite"]["positions"]
    assert days["postgresql"] == days["sqlite"]
