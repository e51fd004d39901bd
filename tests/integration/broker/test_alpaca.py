"""The Alpaca adapter on the loopback Alpaca server: the broker contract, then what is Alpaca's own
(HTTP codes, Retry-After, HTML 5xx bodies, timeouts, paper/live, keys kept secret, daily bars)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import pytest
import structlog
from pydantic import SecretStr

from shared.broker import (
    BrokerAuthError,
    BrokerError,
    CancelOutcome,
    DuplicateClientOrderIdError,
    InsufficientBuyingPowerError,
    OrderRequest,
    OrderStatus,
    OrderType,
    RateLimitedError,
    TransientBrokerError,
)
from shared.broker.alpaca import AlpacaBroker
from shared.settings import BrokerKind, DataFeed, TradingMode, load_settings
from shared.trading import Side
from tests.fakes.alpaca_server import (
    AlpacaLoopback,
    AlpacaWorld,
    Fault,
    FaultKind,
    FillMode,
    FillRule,
    running_alpaca,
)
from tests.integration.broker.contract import BrokerContract, BrokerWorld, Fill, SubmissionFault

TIMEOUT_S = 1.0
ORDERS = "/v2/orders"

_FILLS = {
    Fill.IMMEDIATE: FillRule(FillMode.IMMEDIATE),
    Fill.NEVER: FillRule(FillMode.NEVER),
    Fill.HALF: FillRule(FillMode.PARTIAL, fraction=Decimal("0.5")),
    Fill.ON_CANCEL: FillRule(FillMode.ON_CANCEL),
}
_FAULTS = {
    SubmissionFault.RATE_LIMITED: FaultKind.RATE_LIMIT,
    SubmissionFault.TRANSIENT: FaultKind.SERVER_ERROR,
    SubmissionFault.RESPONSE_LOST: FaultKind.LOSE_RESPONSE,
}


class RecordedSleep:
    """Stands in for `asyncio.sleep` in the adapter: remembers each pause, waits for none."""

    def __init__(self) -> None:
        self.delays_s: list[float] = []

    async def __call__(self, delay_s: float) -> None:
        self.delays_s.append(delay_s)
        await asyncio.sleep(0)


class LoopbackWorld(BrokerWorld):
    def __init__(self, world: AlpacaWorld) -> None:
        self.alpaca = world

    def set_cash(self, cash: Decimal) -> None:
        self.alpaca.set_cash(cash)

    def set_position(self, symbol: str, qty: Decimal, avg_entry_price: Decimal) -> None:
        self.alpaca.set_position(symbol, qty, avg_entry_price)

    def set_asset(self, symbol: str, *, tradable: bool = True, fractionable: bool = True) -> None:
        self.alpaca.set_asset(symbol, tradable=tradable, fractionable=fractionable)

    def set_quote(
        self,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        *,
        bid_size: Decimal = Decimal(100),
        ask_size: Decimal = Decimal(100),
    ) -> None:
        self.alpaca.set_quote(symbol, bid, ask, bid_size=bid_size, ask_size=ask_size)

    def set_trade(self, symbol: str, price: Decimal) -> None:
        self.alpaca.set_trade(symbol, price)

    def set_fill(self, symbol: str, fill: Fill) -> None:
        self.alpaca.set_fill(_FILLS[fill], symbol)

    def fail_next_submissions(self, fault: SubmissionFault, times: int = 1) -> None:
        self.alpaca.inject(
            Fault("POST", ORDERS, _FAULTS[fault], times=times, hang_s=TIMEOUT_S * 1.5)
        )

    def submissions(self, client_order_id: str) -> int:
        return self.alpaca.creates(client_order_id)


@pytest.fixture
def loopback() -> Iterator[AlpacaLoopback]:
    with running_alpaca() as server:
        yield server


@pytest.fixture
def sleep() -> RecordedSleep:
    return RecordedSleep()


def _broker(loopback: AlpacaLoopback, sleep: RecordedSleep, **overrides: object) -> AlpacaBroker:
    options: dict[str, object] = {
        "key_id": SecretStr(loopback.world.key_id),
        "secret_key": SecretStr(loopback.world.secret_key),
        "timeout_s": TIMEOUT_S,
        "sleep": sleep,
        "jitter": lambda: 0.5,
        "base_url_override": loopback.base_url,
    }
    options.update(overrides)
    return AlpacaBroker(**options)  # type: ignore[arg-type]


class TestAlpacaBrokerContract(BrokerContract):
    @pytest.fixture
    def world(self, loopback: AlpacaLoopback) -> LoopbackWorld:
        return LoopbackWorld(loopback.world)

    @pytest.fixture
    async def broker(
        self, loopback: AlpacaLoopback, sleep: RecordedSleep
    ) -> AsyncIterator[AlpacaBroker]:
        yield _broker(loopback, sleep)


def _market(symbol: str, side: Side, qty: str, client_order_id: str) -> OrderRequest:
    return OrderRequest(
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        order_type=OrderType.MARKET,
        client_order_id=client_order_id,
    )


async def test_a_rebalance_sells_one_symbol_buys_two_and_leaves_cash_and_positions_consistent(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    world = loopback.world
    world.set_cash(Decimal("1000"))
    world.set_quote("SPY", Decimal("450.00"), Decimal("450.10"))
    world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    world.set_quote("MSFT", Decimal("400.00"), Decimal("400.40"))
    world.set_position("SPY", Decimal("20"), Decimal("400"))
    broker = _broker(loopback, sleep)

    sold = await broker.submit_order(_market("SPY", Side.SELL, "20", "alc:wf:SPY:s:sell:1"))
    bought_aapl = await broker.submit_order(
        OrderRequest(
            symbol="AAPL",
            side=Side.BUY,
            qty=Decimal("30"),
            order_type=OrderType.LIMIT,
            limit_price=Decimal("150.10"),
            client_order_id="alc:wf:AAPL:b:buy:1",
        )
    )
    bought_msft = await broker.submit_order(
        _market("MSFT", Side.BUY, "10.5", "alc:wf:MSFT:b:buy:1")
    )

    assert [o.status for o in (sold, bought_aapl, bought_msft)] == [OrderStatus.FILLED] * 3
    proceeds = Decimal("20") * Decimal("450.00")
    spent = Decimal("30") * Decimal("150.10") + Decimal("10.5") * Decimal("400.40")
    account = await broker.get_account()
    assert account.cash == Decimal("1000") + proceeds - spent
    positions = {p.symbol: p for p in await broker.get_positions()}
    assert {s: p.qty for s, p in positions.items()} == {
        "AAPL": Decimal("30"),
        "MSFT": Decimal("10.5"),
    }
    assert positions["MSFT"].avg_entry_price == Decimal("400.40")
    assert account.equity == account.cash + sum(p.market_value for p in positions.values())
    assert sleep.delays_s == []


async def test_a_429_is_retried_after_the_retry_after_the_server_gave(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    loopback.world.inject(Fault("POST", ORDERS, FaultKind.RATE_LIMIT, retry_after_s=7))
    broker = _broker(loopback, sleep)

    order = await broker.submit_order(_market("AAPL", Side.BUY, "1", "alc:wf:AAPL:b:1"))

    assert order.status is OrderStatus.FILLED
    assert sleep.delays_s == [7.0]
    assert loopback.world.calls("POST", ORDERS) == 2
    assert loopback.world.creates("alc:wf:AAPL:b:1") == 1


async def test_insufficient_buying_power_is_a_terminal_403_and_never_retried(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.set_cash(Decimal("10"))
    loopback.world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    broker = _broker(loopback, sleep)

    with pytest.raises(InsufficientBuyingPowerError) as refused:
        await broker.submit_order(_market("AAPL", Side.BUY, "1", "alc:wf:AAPL:b:1"))

    assert (refused.value.http_status, refused.value.code) == (403, "40310000")
    assert refused.value.retryable is False
    assert loopback.world.calls("POST", ORDERS) == 1
    assert sleep.delays_s == []


async def test_a_timed_out_order_is_found_by_client_order_id_and_not_resubmitted(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    loopback.world.inject(Fault("POST", ORDERS, FaultKind.LOSE_RESPONSE, hang_s=TIMEOUT_S * 1.5))
    broker = _broker(loopback, sleep)

    order = await broker.submit_order(_market("AAPL", Side.BUY, "2", "alc:wf:AAPL:b:1"))

    assert order.filled_qty == Decimal("2")
    assert loopback.world.creates("alc:wf:AAPL:b:1") == 1
    assert loopback.world.calls("POST", ORDERS) == 1
    assert loopback.world.calls("GET", "/v2/orders:by_client_order_id") == 1
    assert len(sleep.delays_s) == 1


async def test_a_timeout_with_nothing_placed_submits_again_after_looking(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    loopback.world.inject(Fault("POST", ORDERS, FaultKind.HANG, hang_s=TIMEOUT_S * 1.5))
    broker = _broker(loopback, sleep)

    order = await broker.submit_order(_market("AAPL", Side.BUY, "2", "alc:wf:AAPL:b:1"))

    assert order.filled_qty == Decimal("2")
    assert loopback.world.creates("alc:wf:AAPL:b:1") == 1
    assert loopback.world.calls("GET", "/v2/orders:by_client_order_id") == 1


async def test_cancelling_a_filled_order_reads_alpacas_422_as_already_terminal(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    broker = _broker(loopback, sleep)
    order = await broker.submit_order(_market("AAPL", Side.BUY, "1", "alc:wf:AAPL:b:1"))

    result = await broker.cancel_order(order.order_id)

    assert (result.outcome, result.terminal_state) == (CancelOutcome.ALREADY_TERMINAL, "filled")
    assert loopback.world.calls("DELETE", f"{ORDERS}/{order.order_id}") == 1
    assert sleep.delays_s == []


async def test_5xx_html_bodies_are_retried_with_exponential_backoff(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.inject(Fault("GET", "/v2/account", FaultKind.SERVER_ERROR, times=2))
    broker = _broker(loopback, sleep)

    account = await broker.get_account()

    assert account.cash == Decimal("100000")
    assert sleep.delays_s == [1.1, 2.2]


async def test_retries_end_after_broker_retries_with_a_transient_error_naming_the_call(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.inject(Fault("GET", "/v2/account", FaultKind.SERVER_ERROR, times=4))
    broker = _broker(loopback, sleep)

    with pytest.raises(TransientBrokerError) as failed:
        await broker.get_account()

    assert failed.value.retryable is True
    assert failed.value.http_status == 500
    assert "read the account" in str(failed.value) and "HTML" in str(failed.value)
    assert len(sleep.delays_s) == 3
    assert loopback.world.calls("GET", "/v2/account") == 4


async def test_the_sdks_own_retry_loop_is_off(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.inject(Fault("GET", "/v2/account", FaultKind.RATE_LIMIT, retry_after_s=3))
    broker = _broker(loopback, sleep, retries=0)

    with pytest.raises(RateLimitedError) as limited:
        await broker.get_account()

    assert limited.value.retry_after_s == 3.0
    assert loopback.world.calls("GET", "/v2/account") == 1


async def test_a_client_order_id_reused_for_another_order_is_refused(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    for symbol in ("AAPL", "MSFT"):
        loopback.world.set_quote(symbol, Decimal("100.00"), Decimal("100.10"))
    broker = _broker(loopback, sleep)
    await broker.submit_order(_market("AAPL", Side.BUY, "1", "alc:wf:X"))

    with pytest.raises(DuplicateClientOrderIdError) as refused:
        await broker.submit_order(_market("MSFT", Side.BUY, "1", "alc:wf:X"))

    assert "alc:wf:X" in str(refused.value) and "AAPL" in str(refused.value)
    assert loopback.world.creates("alc:wf:X") == 2


async def test_keys_never_appear_in_errors_or_logs(
    loopback: AlpacaLoopback, sleep: RecordedSleep, caplog: pytest.LogCaptureFixture
) -> None:
    world = loopback.world
    world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    world.inject(
        Fault(
            "GET",
            "/v2/account",
            FaultKind.SERVER_ERROR,
            times=10,
            body=f"proxy error for key {world.key_id} / {world.secret_key}",
        )
    )
    world.inject(Fault("POST", ORDERS, FaultKind.HANG, times=10, hang_s=TIMEOUT_S * 1.5))
    caplog.set_level(logging.DEBUG)
    errors: list[BrokerError] = []
    with structlog.testing.capture_logs() as logs:
        broker = _broker(loopback, sleep, retries=1)
        wrong_keys = _broker(
            loopback, sleep, key_id=SecretStr("PKWRONGKEY"), secret_key=SecretStr("wrong-secret")
        )
        for call in (
            broker.get_account(),
            broker.submit_order(_market("AAPL", Side.BUY, "1", "alc:wf:AAPL:b:1")),
            wrong_keys.get_positions(),
        ):
            with pytest.raises(BrokerError) as failed:
                await call
            errors.append(failed.value)

    assert isinstance(errors[2], BrokerAuthError)
    assert "ALCHEMISER_ALPACA_KEY_ID" in str(errors[2])
    assert logs, "the retries were logged"
    seen = " ".join(
        [repr(e) + str(e) + repr(e.args) for e in errors]
        + [repr(entry) for entry in logs]
        + [caplog.text, repr(broker), repr(wrong_keys)]
    )
    for secret in (world.key_id, world.secret_key, "PKWRONGKEY", "wrong-secret"):
        assert secret not in seen


def test_paper_or_live_comes_from_the_trading_mode_never_a_url() -> None:
    paper = AlpacaBroker.from_settings(
        load_settings(alpaca_key_id="k", alpaca_secret_key="s", broker=BrokerKind.ALPACA)
    )
    live = AlpacaBroker.from_settings(
        load_settings(
            alpaca_key_id="k",
            alpaca_secret_key="s",
            broker=BrokerKind.ALPACA,
            trading_mode=TradingMode.LIVE,
        )
    )

    assert paper._trading._base_url == "https://paper-api.alpaca.markets"
    assert live._trading._base_url == "https://api.alpaca.markets"


def test_a_url_override_must_point_at_a_loopback_server() -> None:
    with pytest.raises(BrokerError, match="ALCHEMISER_TRADING_MODE"):
        AlpacaBroker(
            key_id=SecretStr("k"),
            secret_key=SecretStr("s"),
            base_url_override="https://api.alpaca.markets",
        )


def test_missing_keys_name_the_settings_to_set() -> None:
    with pytest.raises(BrokerAuthError, match="ALCHEMISER_ALPACA_SECRET_KEY"):
        AlpacaBroker.from_settings(load_settings(alpaca_key_id="k", broker=BrokerKind.ALPACA))


async def test_daily_bars_are_adjusted_rows_dated_in_new_york(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    day1, day2 = dt.date(2026, 11, 24), dt.date(2026, 11, 25)
    loopback.world.set_daily_bars(
        "SPY",
        [
            (day1, Decimal("1.5"), Decimal("2.25"), Decimal("1.25"), Decimal("2"), 1000),
            (day2, Decimal("2"), Decimal("3"), Decimal("1.75"), Decimal("2.5"), 1200),
        ],
    )
    broker = _broker(loopback, sleep)

    rows = await broker.get_daily_bars(["SPY", "NONE"], day1, day2)

    assert [(r.date, r.symbol, r.close, r.volume) for r in rows] == [
        (day1, "SPY", Decimal("2.0"), Decimal("1000")),
        (day2, "SPY", Decimal("2.5"), Decimal("1200")),
    ]
    [bars_call] = [r for r in loopback.world.requests if r.path == "/v2/stocks/bars"]
    assert (bars_call.query["adjustment"], bars_call.query["feed"]) == ("all", "iex")
    assert bars_call.query["timeframe"] == "1Day"


async def test_no_bars_over_a_long_range_is_a_transient_error_after_retries(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    broker = _broker(loopback, sleep)

    with pytest.raises(TransientBrokerError, match="no bars"):
        await broker.get_daily_bars(["SPY"], dt.date(2026, 1, 1), dt.date(2026, 2, 1))

    assert len(sleep.delays_s) == 3
    assert await broker.get_daily_bars(["SPY"], dt.date(2026, 2, 2), dt.date(2026, 2, 4)) == []


async def test_orders_ended_by_the_broker_map_to_the_finalisation_statuses(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    loopback.world.set_fill(FillRule(FillMode.NEVER), "AAPL")
    broker = _broker(loopback, sleep)
    ended = {}
    for status in ("expired", "canceled", "rejected"):
        placed = await broker.submit_order(_market("AAPL", Side.BUY, "1", f"alc:{status}"))
        assert placed.status is OrderStatus.ACCEPTED and placed.broker_status == "new"
        loopback.world.end_order(f"alc:{status}", status)
        ended[status] = await broker.get_order(placed.order_id)

    assert {s: (o.status, o.broker_status) for s, o in ended.items() if o is not None} == {
        "expired": (OrderStatus.REJECTED, "expired"),
        "canceled": (OrderStatus.CANCELED, "canceled"),
        "rejected": (OrderStatus.REJECTED, "rejected"),
    }


async def test_sell_proceeds_can_reach_buying_power_late(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    world = loopback.world
    world.set_cash(Decimal("0"))
    world.set_quote("SPY", Decimal("100.00"), Decimal("100.10"))
    world.set_position("SPY", Decimal("10"), Decimal("90"))
    world.delay_sell_proceeds(account_reads=2)
    broker = _broker(loopback, sleep)

    await broker.submit_order(_market("SPY", Side.SELL, "10", "alc:wf:SPY:s"))
    first, second = await broker.get_account(), await broker.get_account()

    assert (first.cash, first.buying_power) == (Decimal("1000"), Decimal("0"))
    assert (second.cash, second.buying_power) == (Decimal("1000"), Decimal("1000"))


async def test_the_clock_is_open_inside_a_session_and_closes_early_on_an_early_close(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    new_york = dt.timezone(dt.timedelta(hours=-5))
    loopback.world.set_now(dt.datetime(2026, 11, 27, 10, 0, tzinfo=new_york))
    broker = _broker(loopback, sleep)

    clock = await broker.get_clock()

    assert clock.is_open is True
    assert clock.now == dt.datetime(2026, 11, 27, 10, 0, tzinfo=new_york)
    assert clock.next_close == dt.datetime(2026, 11, 27, 13, 0, tzinfo=new_york)
    assert clock.next_open == dt.datetime(2026, 11, 30, 9, 30, tzinfo=new_york)


async def test_a_stale_quote_keeps_the_time_it_was_quoted(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    quoted_at = dt.datetime(2026, 11, 25, 20, 59, 58, tzinfo=dt.UTC)
    loopback.world.set_quote("AAPL", Decimal("150.00"), Decimal("149.00"), timestamp=quoted_at)
    broker = _broker(loopback, sleep)

    quote = await broker.get_latest_quote("AAPL")

    assert quote is not None
    assert quote.as_of == quoted_at
    assert (quote.bid, quote.ask) == (Decimal("150.00"), Decimal("149.00"))


async def test_quotes_come_from_the_configured_data_feed(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    broker = _broker(loopback, sleep, data_feed=DataFeed.SIP)

    await broker.get_latest_quote("AAPL")

    [quote_call] = [r for r in loopback.world.requests if r.path == "/v2/stocks/quotes/latest"]
    assert (quote_call.query["symbols"], quote_call.query["feed"]) == ("AAPL", "sip")


async def test_without_retry_after_the_rate_limit_reset_time_sets_the_pause(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.inject(
        Fault("GET", "/v2/account", FaultKind.RATE_LIMIT, retry_after_s=None, reset_in_s=30)
    )
    broker = _broker(loopback, sleep)

    await broker.get_account()

    [pause_s] = sleep.delays_s
    assert 20 < pause_s <= 31


async def test_a_cancel_refused_with_42210000_is_already_terminal_only_if_the_order_ended(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    world = loopback.world
    world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    world.set_fill(FillRule(FillMode.NEVER), "AAPL")
    broker = _broker(loopback, sleep)
    working = await broker.submit_order(_market("AAPL", Side.BUY, "1", "alc:working"))
    ended = await broker.submit_order(_market("AAPL", Side.BUY, "1", "alc:ended"))
    world.end_order("alc:ended", "expired")
    refusal = '{"code": 42210000, "message": "order is not cancelable"}'
    for order in (working, ended):
        world.inject(
            Fault(
                "DELETE", f"{ORDERS}/{order.order_id}", FaultKind.ANSWER, status=422, body=refusal
            )
        )

    with pytest.raises(BrokerError) as refused:
        await broker.cancel_order(working.order_id)
    result = await broker.cancel_order(ended.order_id)

    assert refused.value.code == "42210000" and "not cancelable" in str(refused.value)
    assert (result.outcome, result.terminal_state) == (CancelOutcome.ALREADY_TERMINAL, "expired")


async def test_with_retries_used_up_the_order_is_still_looked_up_before_failing(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    loopback.world.inject(Fault("POST", ORDERS, FaultKind.LOSE_RESPONSE, hang_s=TIMEOUT_S * 1.5))
    broker = _broker(loopback, sleep, retries=0)

    order = await broker.submit_order(_market("AAPL", Side.BUY, "2", "alc:wf:AAPL:b:1"))

    assert order.filled_qty == Decimal("2")
    assert loopback.world.creates("alc:wf:AAPL:b:1") == 1


async def test_an_order_never_accepted_fails_transient_after_the_retries_and_a_last_look(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    loopback.world.inject(Fault("POST", ORDERS, FaultKind.SERVER_ERROR, times=3))
    broker = _broker(loopback, sleep, retries=2)

    with pytest.raises(TransientBrokerError):
        await broker.submit_order(_market("AAPL", Side.BUY, "2", "alc:wf:AAPL:b:1"))

    assert loopback.world.creates("alc:wf:AAPL:b:1") == 0
    assert loopback.world.calls("POST", ORDERS) == 3
    assert loopback.world.calls("GET", "/v2/orders:by_client_order_id") == 3


async def test_either_wording_of_alpacas_duplicate_id_refusal_resolves_to_the_placed_order(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    broker = _broker(loopback, sleep)
    request = _market("AAPL", Side.BUY, "1", "alc:wf:AAPL:b:1")
    placed = await broker.submit_order(request)
    refusal = '{"code": 40010001, "message": "client order id must be unique"}'
    loopback.world.inject(Fault("POST", ORDERS, FaultKind.ANSWER, status=422, body=refusal))

    again = await broker.submit_order(request)

    assert again.order_id == placed.order_id
    assert loopback.world.creates("alc:wf:AAPL:b:1") == 1
