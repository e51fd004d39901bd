"""The order-chain rules, one row per transition: a chain, the timer that fires, the broker's
answers to what the rules ask in turn, and what the step ends with (the chain's state, the
events recorded, the timers armed). Pure: the answers are data, no broker runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from typing import TypeVar

import pytest

from services.execution.chain import (
    BuyingPowerRead,
    CancelAnswered,
    CancelOrder,
    CloseAnswered,
    CloseFound,
    ClosePosition,
    Command,
    Decision,
    FindClose,
    LastTradeRead,
    LookUpOrder,
    Observation,
    OrderLookedUp,
    OrderRead,
    QuoteRead,
    ReadBuyingPower,
    ReadLastTrade,
    ReadOrder,
    ReadPurpose,
    ReadQuote,
    ReadSizingFacts,
    SizingFactsRead,
    SubmitAnswered,
    SubmitOrder,
    TimerFired,
    close_guard_reason,
    decide,
    may_submit,
)
from services.execution.machine import TimerKind
from services.execution.policy import ExecutionPolicy
from services.execution.sizing import AssetInfo
from services.execution.state import Chain, ChainState, WorkflowPhase
from shared.broker.errors import (
    BrokerError,
    InsufficientQtyAvailableError,
    InvalidOrderError,
    RateLimitedError,
    TransientBrokerError,
)
from shared.broker.models import (
    CancelOutcome,
    CancelResult,
    Order,
    OrderStatus,
    OrderType,
    Position,
)
from shared.broker.order_rules import OrderRule, rule_error
from shared.broker.request_budget import BudgetShare, RequestBudget
from shared.events import Event
from shared.trading import Quote, QuoteSource, Side
from tests.unit.execution.machine_run import T0, workflow

WORKFLOW = workflow(phase=WorkflowPhase.BUYING)
POLICY = ExecutionPolicy(
    poll_s=2,
    fill_wait_s=10,
    final_wait_s=30,
    cancel_confirm_s=10,
    quote_wait_s=5,
    max_repegs=1,
    market_bp_checks=5,
    settle_checks=4,
    min_notional_usd=Decimal("1.00"),
    broker_retries=3,
    treat_partial_as_failure=True,
    close_margin_s=120,
    poll_budget=None,
)
STATUSES = {
    "accepted": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "pending_cancel": OrderStatus.ACCEPTED,
    "expired": OrderStatus.REJECTED,
    "rejected": OrderStatus.REJECTED,
}

C = TypeVar("C")
Answer = Callable[[Command], Observation]
"""The broker's answer to the command the rules asked for."""


# ---------------------------------------------------------------------- the broker's answers


def _quote(bid: str, ask: str) -> Quote:
    return Quote(
        symbol="AAA",
        bid=Decimal(bid),
        ask=Decimal(ask),
        bid_size=Decimal(100),
        ask_size=Decimal(100),
        as_of=T0,
        source=QuoteSource.REST,
    )


def _order(
    order_id: str = "ord-1",
    status: str = "accepted",
    filled: str = "0",
    avg: str | None = None,
    *,
    client_order_id: str = "alc:wf-1:AAA:b:buy:1",
    qty: Decimal = Decimal(10),
    order_type: OrderType = OrderType.LIMIT,
    limit_price: Decimal | None = Decimal("100.01"),
) -> Order:
    return Order(
        order_id=order_id,
        client_order_id=client_order_id,
        symbol="AAA",
        side=Side.BUY,
        order_type=order_type,
        qty=qty,
        limit_price=limit_price,
        status=STATUSES[status],
        broker_status=status,
        filled_qty=Decimal(filled),
        filled_avg_price=Decimal(avg) if avg is not None else None,
        submitted_at=T0,
        updated_at=T0,
    )


def quote(bid: str = "100.00", ask: str = "100.50") -> Answer:
    return lambda asked: QuoteRead(_expect(asked, ReadQuote), _quote(bid, ask))


def last_trade(price: str | None) -> Answer:
    return lambda asked: LastTradeRead(
        _expect(asked, ReadLastTrade), Decimal(price) if price is not None else None
    )


def no_quote() -> Answer:
    return lambda asked: QuoteRead(_expect(asked, ReadQuote), None)


def facts(position: str | None = None) -> Answer:
    """A tradable whole-share asset; `position` is the shares held (all available)."""

    def answer(asked: Command) -> Observation:
        held = (
            Position(
                symbol="AAA",
                qty=Decimal(position),
                qty_available=Decimal(position),
                market_value=Decimal(0),
                avg_entry_price=Decimal(100),
                current_price=None,
            )
            if position is not None
            else None
        )
        return SizingFactsRead(_expect(asked, ReadSizingFacts), AssetInfo(True, False), held)

    return answer


def buying_power(amount: str = "1000000") -> Answer:
    return lambda asked: BuyingPowerRead(
        _expect(asked, ReadBuyingPower), _quote("100.00", "100.50"), Decimal(amount)
    )


def not_found(jitter: float = 0.0) -> Answer:
    return lambda asked: OrderLookedUp(_expect(asked, LookUpOrder), None, jitter)


def found() -> Answer:
    def answer(asked: Command) -> Observation:
        looked_up = _expect(asked, LookUpOrder)
        return OrderLookedUp(looked_up, _order(client_order_id=looked_up.client_order_id))

    return answer


def placed(status: str = "accepted") -> Answer:
    def answer(asked: Command) -> Observation:
        submit = _expect(asked, SubmitOrder)
        request = submit.request
        order = _order(
            status=status,
            client_order_id=request.client_order_id,
            qty=request.qty,
            order_type=request.order_type,
            limit_price=request.limit_price,
        )
        return SubmitAnswered(submit, order)

    return answer


def close_found(status: str | None) -> Answer:
    """The symbol's orders list the close-position order (`status`), or none (None)."""

    def answer(asked: Command) -> Observation:
        search = _expect(asked, FindClose)
        if status is None:
            return CloseFound(search)
        done = status == "filled"
        return CloseFound(search, _close_order(status, "0.3" if done else "0", done))

    return answer


def closed(error: BrokerError | None = None) -> Answer:
    def answer(asked: Command) -> Observation:
        call = _expect(asked, ClosePosition)
        if error is not None:
            return CloseAnswered(call, error=error)
        return CloseAnswered(call, _close_order("accepted", "0", False))

    return answer


def _close_order(status: str, filled: str, priced: bool) -> Order:
    """The market SELL a close-position call made, under an id the broker chose."""
    return _order(
        "ord-1",
        status,
        filled,
        "100.00" if priced else None,
        client_order_id="9b2f-broker-chosen",
        qty=Decimal("0.3"),
        order_type=OrderType.MARKET,
        limit_price=None,
    )


def refused(error: BrokerError) -> Answer:
    return lambda asked: SubmitAnswered(_expect(asked, SubmitOrder), error=error)


def read(status: str, filled: str = "0", avg: str | None = None) -> Answer:
    def answer(asked: Command) -> Observation:
        reading = _expect(asked, ReadOrder)
        return OrderRead(reading, _order(reading.broker_order_id, status, filled, avg))

    return answer


def read_nothing() -> Answer:
    return lambda asked: OrderRead(_expect(asked, ReadOrder), None)


def read_failed() -> Answer:
    return lambda asked: OrderRead(
        _expect(asked, ReadOrder), error=TransientBrokerError("read timed out", code="timeout")
    )


def cancel_taken() -> Answer:
    def answer(asked: Command) -> Observation:
        cancel = _expect(asked, CancelOrder)
        result = CancelResult(order_id=cancel.broker_order_id, outcome=CancelOutcome.REQUESTED)
        return CancelAnswered(cancel, result)

    return answer


def already_ended(state: str) -> Answer:
    def answer(asked: Command) -> Observation:
        cancel = _expect(asked, CancelOrder)
        result = CancelResult(
            order_id=cancel.broker_order_id,
            outcome=CancelOutcome.ALREADY_TERMINAL,
            terminal_state=state,
        )
        return CancelAnswered(cancel, result)

    return answer


def cancel_failed() -> Answer:
    return lambda asked: CancelAnswered(
        _expect(asked, CancelOrder), error=TransientBrokerError("cancel timed out", code="timeout")
    )


def _expect(asked: Command, kind: type[C]) -> C:
    assert isinstance(asked, kind), f"the rules asked {asked}, the row answers a {kind.__name__}"
    return asked


def describe(command: Command) -> str:
    match command:
        case ReadQuote():
            return f"quote for {command.purpose}"
        case ReadLastTrade():
            return "last trade"
        case ReadSizingFacts():
            return "sizing facts with position" if command.with_position else "sizing facts"
        case ReadBuyingPower():
            return "buying power"
        case LookUpOrder():
            return "look up" if command.failure is None else "look up after failure"
        case SubmitOrder():
            return f"submit {command.request.order_type.value}"
        case FindClose():
            return "find close" if command.failure is None else "find close after failure"
        case ClosePosition():
            return "close position"
        case ReadOrder():
            return f"read order: {command.purpose.value}"
        case CancelOrder():
            return f"cancel: {command.purpose}"


# ---------------------------------------------------------------------- running a step


@dataclass
class Walk:
    decision: Decision
    events: list[Event]
    asked: list[str]


def walk(
    chain: Chain,
    fired: TimerFired,
    answers: tuple[Answer, ...],
    at_s: float = 0,
    closes_at_s: float | None = None,
) -> Walk:
    """One step as the shell runs it: decide, answer the command, decide again. The session
    closes `closes_at_s` after T0 (None: the run has no close to guard)."""
    now = T0 + timedelta(seconds=at_s)
    workflow = replace(
        WORKFLOW,
        session_close=T0 + timedelta(seconds=closes_at_s) if closes_at_s is not None else None,
    )
    decision = decide(workflow, chain, fired, now, POLICY)
    events = list(decision.events)
    asked: list[str] = []
    for answer in answers:
        assert decision.command is not None, f"the step ended after {asked}; answers are left"
        asked.append(describe(decision.command))
        decision = decide(workflow, decision.chain, answer(decision.command), now, POLICY)
        events.extend(decision.events)
    return Walk(decision, events, asked)


def fired(kind: TimerKind) -> TimerFired:
    return TimerFired(kind)


PRICE, SUBMIT, POLL = fired(TimerKind.PRICE), fired(TimerKind.SUBMIT), fired(TimerKind.POLL)
CANCEL_CHECK = fired(TimerKind.CANCEL_CHECK)
MARKET_BP = TimerFired(TimerKind.MARKET_BP, "escalation")

PRICING = Chain(
    key="BUY:AAA",
    symbol="AAA",
    side=Side.BUY,
    trade_amount=Decimal(1005),
    liquidation=False,
    pricing_started_at=T0,
)
LIQUIDATION = Chain(
    key="SELL:AAA",
    symbol="AAA",
    side=Side.SELL,
    trade_amount=Decimal(-400),
    liquidation=True,
    pricing_started_at=T0,
)
REQUESTED_LIMIT = walk(PRICING, PRICE, (quote(), facts())).decision.chain
"""A BUY of 10 whole shares at 100.01 (quote 100.00 / 100.50), recorded, not yet sent."""
WORKING_LIMIT = walk(REQUESTED_LIMIT, SUBMIT, (not_found(), placed())).decision.chain
"""That limit order, placed at T0 and working."""
REQUESTED_MARKET = walk(
    replace(WORKING_LIMIT, checks=1),
    POLL,
    (read("accepted"), cancel_taken(), read("canceled"), buying_power()),
    at_s=10,
).decision.chain
"""The re-pegs used up: a market order for the 10 shares, recorded at T0+10."""
WORKING_MARKET = walk(REQUESTED_MARKET, SUBMIT, (not_found(), placed()), at_s=10).decision.chain
"""That market order, placed at T0+10 and working."""
CANCELLING_REPEG = walk(
    WORKING_LIMIT, POLL, (read("accepted"), cancel_taken(), read("accepted")), at_s=10
).decision.chain
"""The limit's re-peg cancel, asked at T0+10 and not yet confirmed (deadline T0+20)."""
CANCELLING_ESCALATION = walk(
    replace(WORKING_LIMIT, checks=1),
    POLL,
    (read("accepted"), cancel_taken(), read("accepted")),
    at_s=10,
).decision.chain
WAITING_FOR_BUYING_POWER = walk(
    replace(WORKING_LIMIT, checks=1),
    POLL,
    (read("accepted"), cancel_taken(), read("canceled"), buying_power("10")),
    at_s=10,
).decision.chain
"""An escalation to market whose buying-power check found too little, once."""
CLOSING = walk(LIQUIDATION, PRICE, (quote(), facts(position="0.3"))).decision.chain
"""A close of the 0.3 shares held of a whole-share asset, recorded, not yet made."""
REQUESTED_SELL = walk(
    replace(LIQUIDATION, trade_amount=Decimal(-1005), liquidation=False),
    PRICE,
    (quote(), facts(position="10")),
).decision.chain
"""A SELL limit of 10 shares at 100.49, recorded, not yet sent."""
CANCELLING_AT_CLOSE = walk(
    WORKING_LIMIT, POLL, (read("accepted"), cancel_taken(), read("accepted")), 5, 120
).decision.chain
"""The limit's close-guard cancel, asked at T0+5 (the guard began at T0) and not yet confirmed
(deadline T0+15)."""


# ---------------------------------------------------------------------- the rows


@dataclass(frozen=True)
class Row:
    chain: Chain
    fired: TimerFired
    answers: tuple[Answer, ...]
    asked: tuple[str, ...]
    """What the rules asked the broker, in turn."""
    state: ChainState
    events: tuple[str, ...] = ()
    timers: tuple[tuple[TimerKind, float], ...] = ()
    """(kind, seconds after the step) of the timers armed."""
    at_s: float = 0
    closes_at_s: float | None = None
    """When the session closes, after T0; the close guard begins EXEC_CLOSE_MARGIN_S (120 s)
    before."""
    fields: Mapping[str, object] = field(default_factory=dict)
    """Chain attributes to check, dotted (`order.qty`, `attempts.0.status`)."""


def insufficient_qty(available: str) -> InsufficientQtyAvailableError:
    return InsufficientQtyAvailableError(
        f"insufficient qty available for order (requested: 10, available: {available})",
        requested_qty=Decimal(10),
        available_qty=Decimal(available),
        code="40310000",
    )


ROWS = {
    "price: a usable quote sizes the item and asks for a limit one cent inside the spread": Row(
        PRICING,
        PRICE,
        (quote(), facts()),
        asked=("quote for price", "sizing facts"),
        state=ChainState.REQUESTED,
        events=("OrderRequested",),
        timers=((TimerKind.SUBMIT, 0),),
        fields={
            "order.kind": "limit",
            "order.qty": Decimal(10),
            "order.limit_price": Decimal("100.01"),
            "order.reason": "initial",
        },
    ),
    "price: a quote that prices no limit above $0 is asked for once more": Row(
        PRICING,
        PRICE,
        (quote("0.001", "0.004"), quote(), facts()),
        asked=("quote for price", "quote for price", "sizing facts"),
        state=ChainState.REQUESTED,
        events=("OrderRequested",),
        timers=((TimerKind.SUBMIT, 0),),
        fields={"order.limit_price": Decimal("100.01"), "requoted": True},
    ),
    "price: a quote bad twice is priced and sized at the last trade, to the cent": Row(
        PRICING,
        PRICE,
        (quote("0.001", "0.004"), quote("0.001", "0.004"), last_trade("50.005"), facts()),
        asked=("quote for price", "quote for price", "last trade", "sizing facts"),
        state=ChainState.REQUESTED,
        events=("OrderRequested",),
        timers=((TimerKind.SUBMIT, 0),),
        fields={
            "order.kind": "limit",
            "order.limit_price": Decimal("50.00"),
            "order.qty": Decimal(20),
            "quote": None,
        },
    ),
    "price: a quote bad twice and no last trade skips the order with the reason": Row(
        PRICING,
        PRICE,
        (quote("0.001", "0.004"), quote("0.001", "0.004"), last_trade(None)),
        asked=("quote for price", "quote for price", "last trade"),
        state=ChainState.SKIPPED,
        fields={
            "order": None,
            "error_message": "skipped: no limit price for AAA: its quote priced none above $0 "
            "twice and it has no last trade",
        },
    ),
    "price: no quote asks again 0.3 s later": Row(
        PRICING,
        PRICE,
        (no_quote(),),
        asked=("quote for price",),
        state=ChainState.PRICING,
        timers=((TimerKind.PRICE, 0.3),),
        fields={"quote_attempts": 1},
    ),
    "price: a BUY still without a quote after three tries fails": Row(
        replace(PRICING, quote_attempts=2),
        PRICE,
        (no_quote(), facts()),
        asked=("quote for price", "sizing facts"),
        state=ChainState.FAILED,
        at_s=0.9,
        fields={"error_message": "no price for AAA: no usable quote"},
    ),
    "price: a liquidation still without a quote after three tries goes to market": Row(
        replace(LIQUIDATION, quote_attempts=2),
        PRICE,
        (no_quote(), facts(position="4")),
        asked=("quote for price", "sizing facts with position"),
        state=ChainState.REQUESTED,
        events=("OrderRequested",),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=0.9,
        fields={"order.kind": "market", "order.reason": "fallback", "order.qty": Decimal(4)},
    ),
    "exit: a fractional holding of a whole-share asset is closed, not floored": Row(
        LIQUIDATION,
        PRICE,
        (quote(), facts(position="0.3")),
        asked=("quote for price", "sizing facts with position"),
        state=ChainState.REQUESTED,
        events=("OrderRequested",),
        timers=((TimerKind.SUBMIT, 0),),
        fields={
            "order.kind": "market",
            "order.qty": Decimal("0.3"),
            "order.closes_position": True,
            "order.requested_at": T0,
        },
    ),
    "exit: whole shares held are sold exactly by a limit order": Row(
        LIQUIDATION,
        PRICE,
        (quote(), facts(position="4")),
        asked=("quote for price", "sizing facts with position"),
        state=ChainState.REQUESTED,
        events=("OrderRequested",),
        timers=((TimerKind.SUBMIT, 0),),
        fields={"order.kind": "limit", "order.qty": Decimal(4), "order.closes_position": False},
    ),
    "exit: no close made yet makes the close-position call": Row(
        CLOSING,
        SUBMIT,
        (close_found(None), closed()),
        asked=("find close", "close position"),
        state=ChainState.WORKING,
        events=("OrderSubmitted",),
        timers=((TimerKind.POLL, 2),),
        fields={"order.broker_order_id": "ord-1"},
    ),
    "exit: a close made before a restart is found by listing orders and not made twice": Row(
        CLOSING,
        SUBMIT,
        (close_found("filled"),),
        asked=("find close",),
        state=ChainState.FILLED,
        events=("OrderSubmitted", "OrderFilled"),
        fields={"order.broker_order_id": "ord-1"},
    ),
    "exit: a close whose answer was lost is found after all": Row(
        CLOSING,
        SUBMIT,
        (
            close_found(None),
            closed(TransientBrokerError("timed out", code="timeout")),
            close_found("accepted"),
        ),
        asked=("find close", "close position", "find close after failure"),
        state=ChainState.WORKING,
        events=("OrderSubmitted",),
        timers=((TimerKind.POLL, 2),),
    ),
    "exit: a close not found after a failed call is retried after a backoff": Row(
        CLOSING,
        SUBMIT,
        (
            close_found(None),
            closed(TransientBrokerError("timed out", code="timeout")),
            close_found(None),
        ),
        asked=("find close", "close position", "find close after failure"),
        state=ChainState.REQUESTED,
        timers=((TimerKind.SUBMIT, 1),),
        fields={"order.submit_tries": 1},
    ),
    "submit: the intent is looked up, then submitted and supervised": Row(
        REQUESTED_LIMIT,
        SUBMIT,
        (not_found(), placed()),
        asked=("look up", "submit limit"),
        state=ChainState.WORKING,
        events=("OrderSubmitted",),
        timers=((TimerKind.POLL, 2),),
        fields={"order.broker_order_id": "ord-1", "order.placed_at": T0},
    ),
    "submit: an intent found at the broker by its client order id is not sent again": Row(
        REQUESTED_LIMIT,
        SUBMIT,
        (found(),),
        asked=("look up",),
        state=ChainState.WORKING,
        events=("OrderSubmitted",),
        timers=((TimerKind.POLL, 2),),
    ),
    "submit: a retryable failure not at the broker is retried after Retry-After": Row(
        REQUESTED_LIMIT,
        SUBMIT,
        (not_found(), refused(RateLimitedError("429", retry_after_s=3.0)), not_found()),
        asked=("look up", "submit limit", "look up after failure"),
        state=ChainState.REQUESTED,
        timers=((TimerKind.SUBMIT, 3),),
        fields={"order.submit_tries": 1},
    ),
    "submit: the retry backoff carries up to 20 % jitter": Row(
        REQUESTED_LIMIT,
        SUBMIT,
        (not_found(), refused(TransientBrokerError("503")), not_found(jitter=0.5)),
        asked=("look up", "submit limit", "look up after failure"),
        state=ChainState.REQUESTED,
        timers=((TimerKind.SUBMIT, 1.1),),
    ),
    "submit: a failed submission the broker placed after all is taken as placed": Row(
        REQUESTED_LIMIT,
        SUBMIT,
        (not_found(), refused(TransientBrokerError("timeout")), found()),
        asked=("look up", "submit limit", "look up after failure"),
        state=ChainState.WORKING,
        events=("OrderSubmitted",),
        timers=((TimerKind.POLL, 2),),
    ),
    "submit: retries used up reject the limit as retryable and fall back to market": Row(
        replace(REQUESTED_LIMIT, order=replace(REQUESTED_LIMIT.order, submit_tries=3)),
        SUBMIT,
        (not_found(), refused(TransientBrokerError("503")), not_found(), buying_power()),
        asked=("look up", "submit limit", "look up after failure", "buying power"),
        state=ChainState.REQUESTED,
        events=("OrderRejected", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        fields={"order.kind": "market", "order.reason": "fallback"},
    ),
    "submit: a refused limit falls back to a market order": Row(
        REQUESTED_LIMIT,
        SUBMIT,
        (not_found(), refused(InvalidOrderError("limit out of band")), buying_power()),
        asked=("look up", "submit limit", "buying power"),
        state=ChainState.REQUESTED,
        events=("OrderRejected", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        fields={
            "order.kind": "market",
            "order.reason": "fallback",
            "attempts.0.status": "rejected",
        },
    ),
    "submit: a pattern-day-trader refusal fails the chain naming the rule, no market order": Row(
        REQUESTED_SELL,
        SUBMIT,
        (
            not_found(),
            refused(
                rule_error(
                    OrderRule.PATTERN_DAY_TRADER,
                    "trade denied due to pattern day trading protection",
                    code="40310100",
                    http_status=403,
                )
            ),
        ),
        asked=("look up", "submit limit"),
        state=ChainState.FAILED,
        events=("OrderRejected",),
        fields={"order.kind": "limit", "attempts.0.status": "rejected"},
    ),
    "submit: a wash-trade refusal fails the chain naming the rule, no market order": Row(
        REQUESTED_LIMIT,
        SUBMIT,
        (
            not_found(),
            refused(
                rule_error(
                    OrderRule.WASH_TRADE,
                    "potential wash trade detected. use complex orders",
                    code="40310000",
                    http_status=403,
                )
            ),
        ),
        asked=("look up", "submit limit"),
        state=ChainState.FAILED,
        events=("OrderRejected",),
        fields={"order.kind": "limit"},
    ),
    "submit: a refused market order fails the chain": Row(
        REQUESTED_MARKET,
        SUBMIT,
        (not_found(), refused(InvalidOrderError("not tradable"))),
        asked=("look up", "submit market"),
        state=ChainState.FAILED,
        events=("OrderRejected",),
        at_s=10,
        fields={"error_message": "not tradable"},
    ),
    "submit: a limit the broker accepted as rejected goes to market at once": Row(
        REQUESTED_LIMIT,
        SUBMIT,
        (not_found(), placed(status="rejected")),
        asked=("look up", "submit limit"),
        state=ChainState.REQUESTED,
        events=("OrderRejected", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        fields={"order.kind": "market", "order.reason": "fallback"},
    ),
    "submit: insufficient qty is resubmitted once with the available quantity": Row(
        REQUESTED_SELL,
        SUBMIT,
        (not_found(), refused(insufficient_qty("4"))),
        asked=("look up", "submit limit"),
        state=ChainState.REQUESTED,
        events=("OrderRejected", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        fields={"order.qty": Decimal(4), "order.kind": "limit", "qty_retry_used": True},
    ),
    "submit: a second insufficient-qty refusal ends the chain": Row(
        replace(REQUESTED_SELL, qty_retry_used=True),
        SUBMIT,
        (not_found(), refused(insufficient_qty("4"))),
        asked=("look up", "submit limit"),
        state=ChainState.FAILED,
        events=("OrderRejected",),
    ),
    "submit: insufficient qty with nothing left ends the chain": Row(
        REQUESTED_SELL,
        SUBMIT,
        (not_found(), refused(insufficient_qty("0"))),
        asked=("look up", "submit limit"),
        state=ChainState.FAILED,
        events=("OrderRejected",),
    ),
    "poll: a working limit is polled again exactly at the fill wait": Row(
        WORKING_LIMIT,
        POLL,
        (read("accepted"),),
        asked=("read order: supervise",),
        state=ChainState.WORKING,
        timers=((TimerKind.POLL, 1),),
        at_s=9,
    ),
    "poll: a filled order ends the chain filled": Row(
        WORKING_LIMIT,
        POLL,
        (read("filled", "10", "100.01"),),
        asked=("read order: supervise",),
        state=ChainState.FILLED,
        events=("OrderFilled",),
        at_s=2,
        fields={"filled_qty": Decimal(10), "ended_at": T0 + timedelta(seconds=2)},
    ),
    "poll: a failed read polls again": Row(
        WORKING_LIMIT,
        POLL,
        (read_failed(),),
        asked=("read order: supervise",),
        state=ChainState.WORKING,
        timers=((TimerKind.POLL, 2),),
        at_s=2,
    ),
    "poll: an order the broker does not know fails the chain": Row(
        WORKING_LIMIT,
        POLL,
        (read_nothing(),),
        asked=("read order: supervise",),
        state=ChainState.FAILED,
        at_s=2,
        fields={"error_message": "order not found at the broker"},
    ),
    "poll: a limit the broker ended sends its remainder to market": Row(
        WORKING_LIMIT,
        POLL,
        (read("canceled", "4", "100.01"),),
        asked=("read order: supervise",),
        state=ChainState.REQUESTED,
        events=("OrderFilled", "OrderCancelled", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=2,
        fields={"order.kind": "market", "order.reason": "residual", "order.qty": Decimal(6)},
    ),
    "re-peg: after the fill wait the limit is cancelled and re-pegged through the spread": Row(
        WORKING_LIMIT,
        POLL,
        (read("accepted"), cancel_taken(), read("canceled"), quote()),
        asked=(
            "read order: supervise",
            "cancel: repeg",
            "read order: after_cancel",
            "quote for repeg",
        ),
        state=ChainState.REQUESTED,
        events=("OrderCancelled", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=10,
        fields={
            "checks": 1,
            "order.kind": "repeg",
            "order.limit_price": Decimal("100.52"),
            "order.qty": Decimal(10),
        },
    ),
    "re-peg: after a partial fill only the remainder is re-pegged": Row(
        WORKING_LIMIT,
        POLL,
        (
            read("partially_filled", "4", "100.01"),
            cancel_taken(),
            read("canceled", "4", "100.01"),
            quote(),
        ),
        asked=(
            "read order: supervise",
            "cancel: repeg",
            "read order: after_cancel",
            "quote for repeg",
        ),
        state=ChainState.REQUESTED,
        events=("OrderFilled", "OrderCancelled", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=10,
        fields={"order.qty": Decimal(6), "closed_filled_qty": Decimal(4)},
    ),
    "re-peg: a remainder worth less than the minimum ends the chain filled": Row(
        replace(WORKING_LIMIT, fractionable=True),
        POLL,
        (read("accepted"), cancel_taken(), read("canceled", "9.995", "100.01"), quote()),
        asked=(
            "read order: supervise",
            "cancel: repeg",
            "read order: after_cancel",
            "quote for repeg",
        ),
        state=ChainState.FILLED,
        events=("OrderFilled", "OrderCancelled"),
        at_s=10,
    ),
    "re-peg: a cancel that races a fill ends the chain filled, with no re-peg": Row(
        WORKING_LIMIT,
        POLL,
        (read("accepted"), already_ended("filled"), read("filled", "10", "100.01")),
        asked=("read order: supervise", "cancel: repeg", "read order: confirm_cancel"),
        state=ChainState.FILLED,
        events=("OrderFilled",),
        at_s=10,
    ),
    "re-peg: a cancel the broker refused skips the check, which still counts": Row(
        WORKING_LIMIT,
        POLL,
        (read("accepted"), cancel_failed()),
        asked=("read order: supervise", "cancel: repeg"),
        state=ChainState.WORKING,
        timers=((TimerKind.POLL, 2),),
        at_s=10,
        fields={"checks": 1, "cancel_purpose": None},
    ),
    "re-peg: a cancel not yet confirmed waits on a timer": Row(
        WORKING_LIMIT,
        POLL,
        (read("accepted"), cancel_taken(), read("accepted")),
        asked=("read order: supervise", "cancel: repeg", "read order: after_cancel"),
        state=ChainState.CANCELLING,
        timers=((TimerKind.CANCEL_CHECK, 2),),
        at_s=10,
        fields={"cancel_purpose": "repeg", "cancel_deadline": T0 + timedelta(seconds=20)},
    ),
    "cancel check: a cancel confirmed before the deadline re-pegs": Row(
        CANCELLING_REPEG,
        CANCEL_CHECK,
        (read("canceled"), quote()),
        asked=("read order: cancel_check", "quote for repeg"),
        state=ChainState.REQUESTED,
        events=("OrderCancelled", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=12,
        fields={"order.kind": "repeg"},
    ),
    "cancel check: before the deadline the check repeats": Row(
        CANCELLING_REPEG,
        CANCEL_CHECK,
        (read("accepted"),),
        asked=("read order: cancel_check",),
        state=ChainState.CANCELLING,
        timers=((TimerKind.CANCEL_CHECK, 2),),
        at_s=12,
    ),
    "cancel check: a cancel still pending past the wait is tracked, nothing sent": Row(
        CANCELLING_REPEG,
        CANCEL_CHECK,
        (read("pending_cancel"),),
        asked=("read order: cancel_check",),
        state=ChainState.CANCELLING,
        timers=((TimerKind.CANCEL_CHECK, 2),),
        at_s=20,
        fields={"cancel_purpose": "repeg", "cancel_deadline": None, "attempts": ()},
    ),
    "cancel check: a pending escalation cancel still tracked long after the wait": Row(
        replace(CANCELLING_ESCALATION, cancel_deadline=None),
        CANCEL_CHECK,
        (read("pending_cancel", "4", "100.01"),),
        asked=("read order: cancel_check",),
        state=ChainState.CANCELLING,
        timers=((TimerKind.CANCEL_CHECK, 2),),
        at_s=300,
        fields={"cancel_purpose": "escalation", "order.filled_qty": Decimal(4)},
    ),
    "cancel check: a pending escalation cancel that a fill wins ends filled, no market order": Row(
        CANCELLING_ESCALATION,
        CANCEL_CHECK,
        (read("filled", "10", "100.01"),),
        asked=("read order: cancel_check",),
        state=ChainState.FILLED,
        events=("OrderFilled",),
        at_s=30,
        fields={"filled_qty": Decimal(10), "attempts.0.status": "filled"},
    ),
    "cancel check: an escalation cancel final at last sends only the unfilled rest to market": Row(
        CANCELLING_ESCALATION,
        CANCEL_CHECK,
        (read("canceled", "4", "100.01"), buying_power()),
        asked=("read order: cancel_check", "buying power"),
        state=ChainState.REQUESTED,
        events=("OrderFilled", "OrderCancelled", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=30,
        fields={
            "order.kind": "market",
            "order.reason": "escalation",
            "order.qty": Decimal(6),
            "attempts.0.status": "canceled",
        },
    ),
    "cancel check: an order gone from the broker ends the chain": Row(
        CANCELLING_ESCALATION,
        CANCEL_CHECK,
        (read_nothing(),),
        asked=("read order: cancel_check",),
        state=ChainState.FAILED,
        at_s=12,
        fields={"error_message": "order not found at the broker"},
    ),
    "cancel check: a failed read checks again": Row(
        CANCELLING_ESCALATION,
        CANCEL_CHECK,
        (read_failed(),),
        asked=("read order: cancel_check",),
        state=ChainState.CANCELLING,
        timers=((TimerKind.CANCEL_CHECK, 2),),
        at_s=12,
    ),
    "escalation: after the last re-peg the limit is cancelled and the rest sent to market": Row(
        replace(WORKING_LIMIT, checks=1),
        POLL,
        (read("accepted"), cancel_taken(), read("canceled"), buying_power()),
        asked=(
            "read order: supervise",
            "cancel: escalation",
            "read order: after_cancel",
            "buying power",
        ),
        state=ChainState.REQUESTED,
        events=("OrderCancelled", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=10,
        fields={"checks": 2, "order.kind": "market", "order.reason": "escalation"},
    ),
    "market buy: too little buying power waits 1 s and checks again": Row(
        replace(WORKING_LIMIT, checks=1),
        POLL,
        (read("accepted"), cancel_taken(), read("canceled"), buying_power("10")),
        asked=(
            "read order: supervise",
            "cancel: escalation",
            "read order: after_cancel",
            "buying power",
        ),
        state=ChainState.PRICING,
        events=("OrderCancelled",),
        timers=((TimerKind.MARKET_BP, 1),),
        at_s=10,
        fields={"bp_checks": 1},
    ),
    "market buy: the last buying-power check fails the chain": Row(
        replace(WAITING_FOR_BUYING_POWER, bp_checks=4),
        MARKET_BP,
        (buying_power("10"),),
        asked=("buying power",),
        state=ChainState.FAILED,
        at_s=25,
        fields={"bp_checks": 5},
    ),
    "leftover: a market order still working after the final wait is cancelled and fails": Row(
        WORKING_MARKET,
        POLL,
        (read("accepted"), cancel_taken(), read("canceled")),
        asked=("read order: supervise", "cancel: leftover", "read order: leftover"),
        state=ChainState.FAILED,
        events=("OrderCancelled",),
        at_s=40,
        fields={"attempts.1.status": "canceled"},
    ),
    "leftover: what the market order filled before its cancel ends the chain filled": Row(
        WORKING_MARKET,
        POLL,
        (read("partially_filled", "4", "100.50"), cancel_taken(), read("canceled", "4", "100.50")),
        asked=("read order: supervise", "cancel: leftover", "read order: leftover"),
        state=ChainState.FILLED,
        events=("OrderFilled", "OrderCancelled"),
        at_s=40,
        fields={"filled_qty": Decimal(4)},
    ),
    "leftover: a market order whose cancel is pending is tracked until it ends": Row(
        WORKING_MARKET,
        POLL,
        (read("accepted"), cancel_taken(), read("pending_cancel")),
        asked=("read order: supervise", "cancel: leftover", "read order: leftover"),
        state=ChainState.CANCELLING,
        timers=((TimerKind.CANCEL_CHECK, 2),),
        at_s=40,
        fields={"cancel_purpose": "leftover"},
    ),
    "leftover: a pending leftover cancel that a fill wins ends the chain filled": Row(
        walk(
            WORKING_MARKET,
            POLL,
            (read("accepted"), cancel_taken(), read("pending_cancel")),
            at_s=40,
        ).decision.chain,
        CANCEL_CHECK,
        (read("filled", "10", "100.50"),),
        asked=("read order: cancel_check",),
        state=ChainState.FILLED,
        events=("OrderFilled",),
        at_s=60,
        fields={"filled_qty": Decimal(10)},
    ),
    "leftover: a pending leftover cancel that ends canceled ends the chain": Row(
        walk(
            WORKING_MARKET,
            POLL,
            (read("accepted"), cancel_taken(), read("pending_cancel")),
            at_s=40,
        ).decision.chain,
        CANCEL_CHECK,
        (read("canceled"),),
        asked=("read order: cancel_check",),
        state=ChainState.FAILED,
        events=("OrderCancelled",),
        at_s=60,
        fields={"cancel_purpose": None, "attempts.1.status": "canceled"},
    ),
    "leftover: a cancel the broker refused is tried again at the next poll": Row(
        WORKING_MARKET,
        POLL,
        (read("accepted"), cancel_failed()),
        asked=("read order: supervise", "cancel: leftover"),
        state=ChainState.WORKING,
        timers=((TimerKind.POLL, 2),),
        at_s=40,
    ),
    "close guard: a chain still to price after the guard ends unplaced, asking nothing": Row(
        PRICING,
        PRICE,
        (),
        asked=(),
        state=ChainState.FAILED,
        at_s=1,
        closes_at_s=121,
        fields={
            "unplaced": close_guard_reason(POLICY),
            "error_message": close_guard_reason(POLICY),
        },
    ),
    "close guard: a chain priced just before the guard asks its limit": Row(
        PRICING,
        PRICE,
        (quote(), facts()),
        asked=("quote for price", "sizing facts"),
        state=ChainState.REQUESTED,
        events=("OrderRequested",),
        timers=((TimerKind.SUBMIT, 0),),
        closes_at_s=120.001,
    ),
    "close guard: an intent the broker lacks is not sent after the guard": Row(
        REQUESTED_LIMIT,
        SUBMIT,
        (not_found(),),
        asked=("look up",),
        state=ChainState.FAILED,
        at_s=1,
        closes_at_s=120,
        fields={"attempts.0.status": "unplaced", "unplaced": close_guard_reason(POLICY)},
    ),
    "close guard: a poll lands exactly where the guard begins": Row(
        WORKING_LIMIT,
        POLL,
        (read("accepted"),),
        asked=("read order: supervise",),
        state=ChainState.WORKING,
        timers=((TimerKind.POLL, 1),),
        at_s=2,
        closes_at_s=123,
    ),
    "close guard: a working limit is cancelled at the guard, not re-pegged": Row(
        WORKING_LIMIT,
        POLL,
        (read("accepted"), cancel_taken(), read("canceled")),
        asked=("read order: supervise", "cancel: close", "read order: after_cancel"),
        state=ChainState.FAILED,
        events=("OrderCancelled",),
        at_s=10,
        closes_at_s=125,
        fields={
            "checks": 0,
            "attempts.0.status": "canceled",
            "unplaced": close_guard_reason(POLICY),
        },
    ),
    "close guard: what filled before the guard's cancel ends the chain filled": Row(
        WORKING_LIMIT,
        POLL,
        (
            read("partially_filled", "4", "100.01"),
            cancel_taken(),
            read("canceled", "4", "100.01"),
        ),
        asked=("read order: supervise", "cancel: close", "read order: after_cancel"),
        state=ChainState.FILLED,
        events=("OrderFilled", "OrderCancelled"),
        at_s=3,
        closes_at_s=120,
        fields={"filled_qty": Decimal(4), "unplaced": close_guard_reason(POLICY)},
    ),
    "close guard: a re-peg cancel confirmed after the guard sends no re-peg": Row(
        CANCELLING_REPEG,
        CANCEL_CHECK,
        (read("canceled"), quote()),
        asked=("read order: cancel_check", "quote for repeg"),
        state=ChainState.FAILED,
        events=("OrderCancelled",),
        at_s=12,
        closes_at_s=130,
    ),
    "close guard: an escalation after the guard sends no market order": Row(
        replace(WORKING_LIMIT, checks=1),
        POLL,
        (read("accepted"), cancel_taken(), read("canceled")),
        asked=("read order: supervise", "cancel: close", "read order: after_cancel"),
        state=ChainState.FAILED,
        events=("OrderCancelled",),
        at_s=10,
        closes_at_s=100,
    ),
    "close guard: a market BUY waiting for buying power ends at the guard": Row(
        WAITING_FOR_BUYING_POWER,
        MARKET_BP,
        (),
        asked=(),
        state=ChainState.FAILED,
        at_s=11,
        closes_at_s=130,
    ),
    "close guard: a working market order is cancelled at the guard": Row(
        WORKING_MARKET,
        POLL,
        (read("accepted"), cancel_taken(), read("canceled")),
        asked=("read order: supervise", "cancel: close", "read order: after_cancel"),
        state=ChainState.FAILED,
        events=("OrderCancelled",),
        at_s=12,
        closes_at_s=130,
    ),
    "close guard: an unconfirmed close cancel is tracked until the order ends, nothing sent": Row(
        CANCELLING_AT_CLOSE,
        CANCEL_CHECK,
        (read("pending_cancel"),),
        asked=("read order: cancel_check",),
        state=ChainState.CANCELLING,
        timers=((TimerKind.CANCEL_CHECK, 2),),
        at_s=15,
        closes_at_s=120,
        fields={"cancel_purpose": "close", "cancel_deadline": None},
    ),
    "a timer whose work an earlier firing did records nothing": Row(
        WORKING_LIMIT,
        SUBMIT,
        (),
        asked=(),
        state=ChainState.WORKING,
    ),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_order_chain_transition(row: Row) -> None:
    result = walk(row.chain, row.fired, row.answers, row.at_s, row.closes_at_s)

    now = T0 + timedelta(seconds=row.at_s)
    assert result.asked == list(row.asked)
    assert result.decision.command is None, "the step still asks the broker for more"
    assert result.decision.chain.state is row.state
    assert [event.event_type for event in result.events] == list(row.events)
    assert [
        (timer.kind, (timer.due_at - now).total_seconds()) for timer in result.decision.timers
    ] == list(row.timers)
    for path, expected in row.fields.items():
        assert _attribute(result.decision.chain, path) == expected, path


def _attribute(value: object, path: str) -> object:
    for part in path.split("."):
        value = value[int(part)] if part.isdigit() else getattr(value, part)  # type: ignore[index]
    return value


@pytest.mark.parametrize(
    ("at_s", "closes_at_s", "allowed"),
    [
        (0, None, True),
        (0, 121, True),
        (0.999, 121, True),
        (1, 121, False),
        (5, 121, False),
        (200, 121, False),
    ],
    ids=["no close to guard", "before", "just before", "at the guard", "after", "after the close"],
)
def test_the_close_guard_allows_new_orders_only_before_close_minus_the_margin(
    at_s: float, closes_at_s: float | None, allowed: bool
) -> None:
    close = T0 + timedelta(seconds=closes_at_s) if closes_at_s is not None else None
    assert may_submit(T0 + timedelta(seconds=at_s), close, POLICY) is allowed


@pytest.mark.parametrize(
    ("live_chains", "poll_in_s"),
    [(0, 2.0), (1, 2.0), (3, 4.0), (7, 9.333), (16, 21.333)],
)
def test_with_a_request_budget_polling_slows_as_live_chains_multiply(
    live_chains: int, poll_in_s: float
) -> None:
    """Execution's share of 180 a minute is 90; polling may use half of it, 45 polls a minute
    for all live chains together (docs/trading-rules.md, Request budget)."""
    policy = replace(POLICY, poll_budget=RequestBudget.share_of(180, BudgetShare.EXECUTION))
    others = tuple(replace(WORKING_MARKET, key=f"BUY:S{n}") for n in range(live_chains))
    workflow = replace(WORKFLOW, chains=others)
    now = T0 + timedelta(seconds=11)
    asked = ReadOrder("ord-1", ReadPurpose.SUPERVISE)

    decision = decide(workflow, WORKING_MARKET, read("accepted")(asked), now, policy)

    [timer] = decision.timers
    assert timer.kind is TimerKind.POLL
    assert round((timer.due_at - now).total_seconds(), 3) == poll_in_s


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        (OrderRule.PATTERN_DAY_TRADER, "trade denied due to pattern day trading protection"),
        (OrderRule.WASH_TRADE, "potential wash trade detected. use complex orders"),
        (OrderRule.DAY_TRADING_BUYING_POWER, "insufficient day trading buying power"),
    ],
)
def test_an_account_rule_refusal_names_the_rule_in_the_chain_and_the_rejection(
    rule: OrderRule, said: str
) -> None:
    error = rule_error(rule, said, code="40310000", http_status=403)
    result = walk(REQUESTED_LIMIT, SUBMIT, (not_found(), refused(error)))

    name = rule.value.replace("_", " ")
    message = result.decision.chain.error_message or ""
    assert message.startswith(f"BUY AAA refused under Alpaca's {name} rule: ")
    assert said in message
    assert [e.reason for e in result.events if e.event_type == "OrderRejected"] == [message]  # type: ignore[attr-defined]
