"""The Alpaca adapter on the loopback Alpaca server: the broker contract, then what is Alpaca's own
(HTTP codes, Retry-After, HTML 5xx bodies, timeouts, paper/live, keys kept secret, daily bars),
and the loopback's own answers on the wire: each order rule's exact status, code and message,
every Alpaca status, orders held in `accepted`, latency, the per-key request budget and count,
closing part of a position."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
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
from shared.broker.order_rules import DayTrading
from shared.broker.request_budget import BudgetShare
from shared.settings import BrokerKind, DataFeed, TradingMode, load_settings
from shared.trading import Side
from tests.fakes.alpaca import (
    AlpacaLoopback,
    AlpacaWorld,
    CancelEnd,
    CancelRule,
    Fault,
    FaultKind,
    FillMode,
    FillRule,
    RateBudget,
    running_alpaca,
)
from tests.fakes.clock import ControlledClock
from tests.integration.broker.contract import (
    RULE_CASES,
    START,
    BrokerContract,
    BrokerWorld,
    Fill,
    RuleCase,
    SubmissionFault,
    rule_market,
)
from tests.integration.broker.contract import CancelEnd as ContractCancelEnd

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

    def set_cancel(self, symbol: str, pending_s: float, end: ContractCancelEnd) -> None:
        self.alpaca.set_cancel(symbol, CancelRule(pending_s, CancelEnd(end.value)))

    def set_day_trading(self, standing: DayTrading) -> None:
        self.alpaca.set_day_trading(standing)

    def set_now(self, moment: dt.datetime) -> None:
        self.alpaca.clock.set(moment)

    def advance(self, seconds: float) -> None:
        self.alpaca.clock.advance(seconds)

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
    with running_alpaca(clock=ControlledClock(START)) as server:
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
        load_settings(alpaca_key_id="k", alpaca_secret_key="s", broker=BrokerKind.ALPACA),
        share=BudgetShare.EXECUTION,
    )
    live = AlpacaBroker.from_settings(
        load_settings(
            alpaca_key_id="k",
            alpaca_secret_key="s",
            broker=BrokerKind.ALPACA,
            trading_mode=TradingMode.LIVE,
        ),
        share=BudgetShare.EXECUTION,
    )

    assert paper._trading._base_url == "https://paper-api.alpaca.markets"
    assert live._trading._base_url == "https://api.alpaca.markets"


def test_from_settings_limits_the_adapter_to_its_share_of_the_request_budget() -> None:
    settings = load_settings(
        alpaca_key_id="k",
        alpaca_secret_key="s",
        broker=BrokerKind.ALPACA,
        alpaca_requests_per_min=200,
    )
    limiters = {
        share: AlpacaBroker.from_settings(settings, share=share)._limiter for share in BudgetShare
    }

    # half of each share at once: strategy and portfolio 50 a minute, execution 100
    assert {share: limiter.max_rate for share, limiter in limiters.items() if limiter} == {
        BudgetShare.STRATEGY: 25,
        BudgetShare.PORTFOLIO: 25,
        BudgetShare.EXECUTION: 50,
    }


def test_a_url_override_must_point_at_a_loopback_server() -> None:
    with pytest.raises(BrokerError, match="ALCHEMISER_TRADING_MODE"):
        AlpacaBroker(
            key_id=SecretStr("k"),
            secret_key=SecretStr("s"),
            base_url_override="https://api.alpaca.markets",
        )


def test_missing_keys_name_the_settings_to_set() -> None:
    with pytest.raises(BrokerAuthError, match="ALCHEMISER_ALPACA_SECRET_KEY"):
        AlpacaBroker.from_settings(
            load_settings(alpaca_key_id="k", broker=BrokerKind.ALPACA), share=BudgetShare.STRATEGY
        )


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
        loopback.world.set_status(f"alc:{status}", status)
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
    world.set_status("alc:ended", "expired")
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


# ---------------------------------------------------------------------- the loopback on the wire


def _wire(loopback: AlpacaLoopback, method: str, path: str, **kwargs: Any) -> requests.Response:
    """A raw request to the loopback with its keys, as any HTTP client would send it."""
    headers = {
        "APCA-API-KEY-ID": loopback.world.key_id,
        "APCA-API-SECRET-KEY": loopback.world.secret_key,
    }
    return requests.request(
        method, f"{loopback.base_url}{path}", headers=headers, timeout=5, **kwargs
    )


def _order_body(request: OrderRequest, time_in_force: str = "day") -> dict[str, Any]:
    body: dict[str, Any] = {
        "symbol": request.symbol,
        "qty": str(request.qty),
        "side": request.side.lower(),
        "type": request.order_type.value,
        "time_in_force": time_in_force,
        "client_order_id": request.client_order_id,
    }
    if request.limit_price is not None:
        body["limit_price"] = str(request.limit_price)
    return body


@pytest.mark.parametrize("case", RULE_CASES, ids=lambda case: case.id)
async def test_the_loopback_refuses_each_rule_with_alpacas_status_code_and_message(
    loopback: AlpacaLoopback, sleep: RecordedSleep, case: RuleCase
) -> None:
    world = LoopbackWorld(loopback.world)
    rule_market(world)
    case.setup(world)
    broker = _broker(loopback, sleep)
    for order in case.before:
        await broker.submit_order(order)

    answer = _wire(loopback, "POST", ORDERS, json=_order_body(case.request))

    assert answer.status_code == case.http_status
    assert answer.json()["code"] == int(case.code)
    assert answer.json()["message"] == case.message


async def test_a_fractional_order_must_be_a_day_order(loopback: AlpacaLoopback) -> None:
    loopback.world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    fractional = _market("AAPL", Side.BUY, "1.5", "alc:wf:AAPL:b:gtc")
    whole = _market("AAPL", Side.BUY, "2", "alc:wf:AAPL:b:gtc-whole")

    refused = _wire(loopback, "POST", ORDERS, json=_order_body(fractional, "gtc"))
    accepted = _wire(loopback, "POST", ORDERS, json=_order_body(whole, "gtc"))

    assert (refused.status_code, refused.json()) == (
        422,
        {"code": 42210000, "message": "fractional orders must be DAY orders"},
    )
    assert accepted.status_code == 200 and accepted.json()["time_in_force"] == "gtc"


STATUS_WORDS = [
    ("pending_new", OrderStatus.ACCEPTED, False),
    ("accepted_for_bidding", OrderStatus.ACCEPTED, False),
    ("pending_replace", OrderStatus.ACCEPTED, False),
    ("done_for_day", OrderStatus.ACCEPTED, False),
    ("calculated", OrderStatus.ACCEPTED, False),
    ("stopped", OrderStatus.ACCEPTED, False),
    ("suspended", OrderStatus.ACCEPTED, False),
    ("replaced", OrderStatus.CANCELED, True),
    ("expired", OrderStatus.REJECTED, True),
    ("rejected", OrderStatus.REJECTED, True),
]


@pytest.mark.parametrize(
    ("word", "ours", "final"), STATUS_WORDS, ids=[w for w, _, _ in STATUS_WORDS]
)
async def test_every_alpaca_status_reaches_us_with_its_own_word(
    loopback: AlpacaLoopback, sleep: RecordedSleep, word: str, ours: OrderStatus, final: bool
) -> None:
    loopback.world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    loopback.world.set_fill(FillRule(FillMode.NEVER), "AAPL")
    broker = _broker(loopback, sleep)
    placed = await broker.submit_order(_market("AAPL", Side.BUY, "1", "alc:wf:AAPL:b:1"))

    loopback.world.set_status("alc:wf:AAPL:b:1", word)
    read = await broker.get_order(placed.order_id)

    assert read is not None
    assert (read.status, read.broker_status, read.is_terminal) == (ours, word, final)


async def test_a_cancel_is_refused_while_a_replace_is_pending(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    loopback.world.set_fill(FillRule(FillMode.NEVER), "AAPL")
    broker = _broker(loopback, sleep)
    placed = await broker.submit_order(_market("AAPL", Side.BUY, "1", "alc:wf:AAPL:b:1"))
    loopback.world.set_status("alc:wf:AAPL:b:1", "pending_replace")

    with pytest.raises(BrokerError) as refused:
        await broker.cancel_order(placed.order_id)

    assert (refused.value.http_status, refused.value.code) == (422, "42210000")


async def test_an_order_stuck_in_accepted_never_fills_and_can_still_be_cancelled(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.set_quote("AAPL", Decimal("150.00"), Decimal("150.10"))
    loopback.world.hold_accepted("AAPL")
    broker = _broker(loopback, sleep)

    placed = await broker.submit_order(_market("AAPL", Side.BUY, "1", "alc:wf:AAPL:b:1"))
    loopback.world.clock.advance(600)
    later = await broker.get_order(placed.order_id)
    cancel = await broker.cancel_order(placed.order_id)
    ended = await broker.get_order(placed.order_id)

    assert (placed.broker_status, placed.status) == ("accepted", OrderStatus.ACCEPTED)
    assert later is not None and (later.broker_status, later.filled_qty) == ("accepted", 0)
    assert cancel.outcome is CancelOutcome.REQUESTED
    assert ended is not None and ended.broker_status == "canceled"


async def test_latency_delays_every_answer(loopback: AlpacaLoopback, sleep: RecordedSleep) -> None:
    loopback.world.set_latency(0.05)
    broker = _broker(loopback, sleep)

    started = time.monotonic()
    await broker.get_account()
    await broker.get_clock()

    assert time.monotonic() - started >= 0.1


async def test_over_the_per_key_budget_alpaca_answers_429_with_its_rate_headers(
    loopback: AlpacaLoopback, sleep: RecordedSleep
) -> None:
    loopback.world.set_rate_limit(RateBudget(limit=3, window_s=6))
    broker = _broker(loopback, sleep, retries=0)
    for _ in range(2):
        await broker.get_account()
    last_allowed = _wire(loopback, "GET", "/v2/account")

    with pytest.raises(RateLimitedError) as limited:
        await broker.get_account()
    over = _wire(loopback, "GET", "/v2/clock")

    assert last_allowed.status_code == 200
    assert last_allowed.headers["X-RateLimit-Limit"] == "3"
    assert last_allowed.headers["X-RateLimit-Remaining"] == "0"
    assert (over.status_code, over.json()["code"]) == (429, 42910000)
    assert int(over.headers["X-RateLimit-Reset"]) > time.time()
    assert limited.value.retry_after_s is not None and 0 < limited.value.retry_after_s <= 7


def test_requests_are_counted_per_key_whichever_process_sends_them(
    loopback: AlpacaLoopback,
) -> None:
    other_process = (
        "import requests, sys\n"
        "keys = {'APCA-API-KEY-ID': sys.argv[2], 'APCA-API-SECRET-KEY': sys.argv[3]}\n"
        "for _ in range(5):\n"
        "    requests.get(sys.argv[1] + '/v2/clock', headers=keys, timeout=5)\n"
    )
    world = loopback.world

    for _ in range(3):
        _wire(loopback, "GET", "/v2/account")
    subprocess.run(
        [sys.executable, "-c", other_process, loopback.base_url, world.key_id, world.secret_key],
        check=True,
        timeout=30,
    )

    assert world.max_in_window(world.key_id, window_s=6) == 8
    assert world.max_in_window(world.key_id, window_s=0.000001) == 1
    assert world.max_in_window("PKSOMEONEELSE", window_s=6) == 0


@pytest.mark.parametrize(
    ("held", "query", "sold"),
    [
        ("7.2273576", {"qty": "0.5"}, "0.5"),
        ("7", {"percentage": "50"}, "3"),
        ("7.2273576", {"percentage": "50"}, "3.6136788"),
        ("7.2273576", {}, "7.2273576"),
    ],
    ids=["qty", "half-of-whole-shares", "half-of-a-fractional-holding", "everything"],
)
def test_closing_a_position_sells_a_qty_or_a_percentage_of_it(
    loopback: AlpacaLoopback, held: str, query: dict[str, str], sold: str
) -> None:
    loopback.world.set_quote("SPY", Decimal("400.00"), Decimal("400.20"))
    loopback.world.set_position("SPY", Decimal(held), Decimal("390"))

    answer = _wire(loopback, "DELETE", "/v2/positions/SPY", params=query)

    assert answer.status_code == 200
    assert (answer.json()["qty"], answer.json()["type"], answer.json()["side"]) == (
        sold,
        "market",
        "sell",
    )


def test_closing_a_position_takes_a_qty_or_a_percentage_not_both(
    loopback: AlpacaLoopback,
) -> None:
    loopback.world.set_quote("SPY", Decimal("400.00"), Decimal("400.20"))
    loopback.world.set_position("SPY", Decimal("7"), Decimal("390"))

    both = _wire(loopback, "DELETE", "/v2/positions/SPY", params={"qty": "1", "percentage": "5"})
    nothing_held = _wire(loopback, "DELETE", "/v2/positions/QQQ")

    assert (both.status_code, both.json()["code"]) == (422, 40010001)
    assert (nothing_held.status_code, nothing_held.json()["code"]) == (404, 40410000)


def test_the_account_reports_alpacas_day_trading_fields(loopback: AlpacaLoopback) -> None:
    loopback.world.set_day_trading(
        DayTrading(pattern_day_trader=True, daytrade_count=2, daytrading_buying_power=Decimal(4000))
    )

    account = _wire(loopback, "GET", "/v2/account").json()

    assert (
        account["daytrading_buying_power"],
        account["pattern_day_trader"],
        account["daytrade_count"],
    ) == ("4000.00", True, 2)
