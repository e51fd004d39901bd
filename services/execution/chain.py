"""The order-chain rules of execution, pure: what one plan item's chain of orders does when one
of its timers fires or the broker answers.

`decide(workflow, chain, observation, now, policy)` returns a `Decision`: the chain's new state,
the events to record, the timers to arm and, when the step cannot finish without another broker
answer (a poll that cancels, reads the order back, reads a quote and re-pegs), the broker
`command` to perform next. The shell (`steps.py`) performs the command and calls `decide` again
with the answer (`observation`), until a decision asks for nothing more; the events of all those
decisions and the last one's timers are the step's result. Nothing here touches the broker, the
clock, the environment or the log: warnings come back as `notes` for the shell to write.

Each rule is one small function below, named for what it decides, so changing a rule (what an
unconfirmed cancel does, when a remainder goes to market) is a change in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from services.execution import pricing, sizing
from services.execution.machine import (
    QUOTE_ATTEMPTS,
    QUOTE_PAUSE_S,
    Emitter,
    TimerKind,
    TimerRequest,
    backoff_s,
    doubling_wait_s,
)
from services.execution.policy import ExecutionPolicy
from services.execution.state import (
    AttemptKind,
    AttemptRecord,
    Chain,
    ChainState,
    OrderIntent,
    RequestReason,
    WorkflowExecution,
    WorkflowPhase,
)
from shared.broker import order_rules
from shared.broker.errors import BrokerError, InsufficientQtyAvailableError, RateLimitedError
from shared.broker.models import (
    CancelOutcome,
    CancelResult,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
)
from shared.broker.order_rules import OrderRule
from shared.events import (
    Event,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderRequested,
    OrderSubmitted,
    client_order_id,
)
from shared.trading import Quote, Side

# ---------------------------------------------------------------------- broker commands


@dataclass(frozen=True)
class ReadQuote:
    """The latest quote, to price the chain's first order or a re-peg."""

    symbol: str
    purpose: Literal["price", "repeg"]


@dataclass(frozen=True)
class ReadSizingFacts:
    """The asset's metadata and, when `with_position`, the position: what sizing needs besides
    the quote."""

    symbol: str
    with_position: bool


@dataclass(frozen=True)
class ReadLastTrade:
    """The symbol's last trade, to price a limit when the quote gave no price worth sending
    twice."""

    symbol: str


@dataclass(frozen=True)
class ReadBuyingPower:
    """The latest quote, then the account's buying power, before a market BUY of `qty`."""

    symbol: str
    qty: Decimal
    reason: RequestReason


@dataclass(frozen=True)
class LookUpOrder:
    """The chain's intent at the broker by its client order id: before it is submitted, and
    after a submission that failed retryably (`failure`), which the broker may have placed all
    the same."""

    client_order_id: str
    failure: BrokerError | None = None


@dataclass(frozen=True)
class SubmitOrder:
    request: OrderRequest


@dataclass(frozen=True)
class FindClose:
    """The order a close-position call made for the chain, if any: the symbol's SELL orders
    since the intent, that carry no client order id of ours. Asked before the call, and after a
    call that failed retryably (`failure`), which the broker may have taken all the same."""

    symbol: str
    since: datetime
    failure: BrokerError | None = None


@dataclass(frozen=True)
class ClosePosition:
    """The broker's close-position call: a market sell of exactly the quantity held."""

    symbol: str


class ReadPurpose(StrEnum):
    SUPERVISE = "supervise"
    """The poll: has the working order filled or ended, is it time to re-peg?"""
    AFTER_CANCEL = "after_cancel"
    """The broker took a cancel: has the order ended yet?"""
    CONFIRM_CANCEL = "confirm_cancel"
    """The order had ended before the cancel reached it: how?"""
    CANCEL_CHECK = "cancel_check"
    """An unconfirmed cancel: has the order ended by now?"""
    LEFTOVER = "leftover"
    """The leftover market order was cancelled: what did it fill?"""


@dataclass(frozen=True)
class ReadOrder:
    broker_order_id: str
    purpose: ReadPurpose


@dataclass(frozen=True)
class CancelOrder:
    broker_order_id: str
    purpose: Literal["repeg", "escalation", "leftover", "close"]


Command = (
    ReadQuote
    | ReadLastTrade
    | ReadSizingFacts
    | ReadBuyingPower
    | LookUpOrder
    | SubmitOrder
    | FindClose
    | ClosePosition
    | ReadOrder
    | CancelOrder
)

# ---------------------------------------------------------------------- observations


@dataclass(frozen=True)
class TimerFired:
    kind: TimerKind
    reason: RequestReason = "fallback"
    """Why a market order is asked for; a MARKET_BP timer carries it in its payload."""


@dataclass(frozen=True)
class QuoteRead:
    asked: ReadQuote
    quote: Quote | None
    """As the broker gave it; None when it has none or the read failed."""


@dataclass(frozen=True)
class LastTradeRead:
    asked: ReadLastTrade
    price: Decimal | None
    """None when the broker has no trade or the read failed."""


@dataclass(frozen=True)
class SizingFactsRead:
    asked: ReadSizingFacts
    asset: sizing.AssetInfo | None
    """None when the asset is unknown or its lookup failed."""
    position: Position | None = None
    position_failed: bool = False


@dataclass(frozen=True)
class BuyingPowerRead:
    asked: ReadBuyingPower
    quote: Quote | None
    buying_power: Decimal | None
    """What the account may spend (`sizing.spendable_buying_power`); None when the account
    read failed."""


@dataclass(frozen=True)
class OrderLookedUp:
    asked: LookUpOrder
    order: Order | None
    """None when the broker does not have it or the lookup failed."""
    jitter: float = 0.0
    """A draw in [0, 1) for the backoff, should the submission be retried."""


@dataclass(frozen=True)
class SubmitAnswered:
    asked: SubmitOrder
    order: Order | None = None
    error: BrokerError | None = None


@dataclass(frozen=True)
class CloseFound:
    asked: FindClose
    order: Order | None = None
    error: BrokerError | None = None
    """The listing failed: whether the broker made the order is unknown."""
    jitter: float = 0.0


@dataclass(frozen=True)
class CloseAnswered:
    asked: ClosePosition
    order: Order | None = None
    """None when nothing was held."""
    error: BrokerError | None = None


@dataclass(frozen=True)
class OrderRead:
    asked: ReadOrder
    order: Order | None = None
    error: BrokerError | None = None


@dataclass(frozen=True)
class CancelAnswered:
    asked: CancelOrder
    result: CancelResult | None = None
    error: BrokerError | None = None


Observation = (
    TimerFired
    | QuoteRead
    | LastTradeRead
    | SizingFactsRead
    | BuyingPowerRead
    | OrderLookedUp
    | SubmitAnswered
    | CloseFound
    | CloseAnswered
    | OrderRead
    | CancelAnswered
)

# ---------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Note:
    """A warning for the shell's log."""

    message: str
    error: str | None = None


@dataclass(frozen=True)
class Decision:
    chain: Chain
    events: tuple[Event, ...] = ()
    timers: tuple[TimerRequest, ...] = ()
    command: Command | None = None
    """The broker command to perform and answer before the step can finish; None ends it."""
    notes: tuple[Note, ...] = ()


@dataclass
class _Step:
    """What one `decide` call knows besides the chain, and what it has recorded so far."""

    workflow: WorkflowExecution
    now: datetime
    policy: ExecutionPolicy
    emitter: Emitter
    halt: str | None = None
    notes: list[Note] = field(default_factory=list)

    def note(self, message: str, error: BrokerError | None = None) -> None:
        self.notes.append(Note(message, error.message if error is not None else None))

    def may_submit(self) -> bool:
        """The close guard, and the kill switch: a halted account sends no new order, and its
        working orders are cancelled as at the close (docs/trading-rules.md, Halt)."""
        return self.halt is None and may_submit(self.now, self.workflow.session_close, self.policy)


def may_submit(now: datetime, session_close: datetime | None, policy: ExecutionPolicy) -> bool:
    """The close guard: a new order (first, re-peg, market) may be sent only before the close
    minus EXEC_CLOSE_MARGIN_S, so nothing is left queued for the next session. A run that began
    with the session closed (a forced paper run) has no close to guard."""
    if session_close is None:
        return True
    return now < session_close - timedelta(seconds=policy.close_margin_s)


def close_guard_reason(policy: ExecutionPolicy) -> str:
    return (
        f"not placed: no new order is sent in the session's last {policy.close_margin_s:g} s "
        "(the close guard, ALCHEMISER_EXEC_CLOSE_MARGIN_S), so none is left queued for the next "
        "session; start the run earlier"
    )


EXPECTED_STATE = {
    TimerKind.PRICE: ChainState.PRICING,
    TimerKind.MARKET_BP: ChainState.PRICING,
    TimerKind.SUBMIT: ChainState.REQUESTED,
    TimerKind.POLL: ChainState.WORKING,
    TimerKind.CANCEL_CHECK: ChainState.CANCELLING,
}
"""The state a chain is in when its timer's work is still to do; in any other, an earlier
firing did the work and the timer records nothing."""


def decide(
    workflow: WorkflowExecution,
    chain: Chain,
    observation: Observation,
    now: datetime,
    policy: ExecutionPolicy,
    *,
    halt: str | None = None,
) -> Decision:
    """The chain's next move. `workflow` is read for the identity its events carry (the
    chain in it may be older than `chain`, which the shell threads through a step). `halt` is
    why the account is halted, when it is: nothing new is sent, as past the close guard."""
    step = _Step(workflow, now, policy, Emitter(workflow, now), halt)
    decision = _transition(chain, observation, step)
    chain = decision.chain
    if chain.ended and chain.ended_at is None:
        chain = replace(chain, ended_at=now)
    return replace(
        decision, chain=chain, events=tuple(step.emitter.events), notes=tuple(step.notes)
    )


def _transition(chain: Chain, observation: Observation, step: _Step) -> Decision:
    match observation:
        case TimerFired():
            return _on_timer(chain, observation, step)
        case QuoteRead(asked=ReadQuote(purpose="price")):
            return _price_with_quote(chain, observation.quote, step)
        case QuoteRead():
            return _repeg(chain, observation.quote, step)
        case LastTradeRead():
            return _price_from_last_trade(chain, observation, step)
        case SizingFactsRead():
            return _size_and_price(chain, observation, step)
        case BuyingPowerRead():
            return _market_buy_if_affordable(chain, observation, step)
        case OrderLookedUp():
            return _after_look_up(chain, observation, step)
        case SubmitAnswered():
            return _after_submission(chain, observation, step)
        case CloseFound():
            return _after_close_search(chain, observation, step)
        case CloseAnswered():
            return _after_close(chain, observation, step)
        case OrderRead(asked=ReadOrder(purpose=ReadPurpose.SUPERVISE)):
            return _supervise(chain, observation, step)
        case OrderRead(asked=ReadOrder(purpose=ReadPurpose.AFTER_CANCEL)):
            return _after_cancel_read(chain, observation.order, step)
        case OrderRead(asked=ReadOrder(purpose=ReadPurpose.CONFIRM_CANCEL)):
            return _confirm_cancel(chain, observation.order, step)
        case OrderRead(asked=ReadOrder(purpose=ReadPurpose.CANCEL_CHECK)):
            return _check_cancel(chain, observation, step)
        case OrderRead():
            return _end_leftover(chain, observation.order, step)
        case CancelAnswered(asked=CancelOrder(purpose="leftover")):
            return _after_leftover_cancel(chain, observation, step)
        case CancelAnswered():
            return _after_cancel(chain, observation, step)


def _on_timer(chain: Chain, fired: TimerFired, step: _Step) -> Decision:
    if step.workflow.phase is WorkflowPhase.DONE or chain.state is not EXPECTED_STATE.get(
        fired.kind
    ):
        return Decision(chain)
    if fired.kind in (TimerKind.PRICE, TimerKind.MARKET_BP) and not step.may_submit():
        return _done(_unplaced(chain, step))
    if fired.kind is TimerKind.PRICE:
        return _ask(chain, ReadQuote(chain.symbol, "price"))
    if fired.kind is TimerKind.MARKET_BP:
        return _market_path(chain, fired.reason, step)
    if fired.kind is TimerKind.SUBMIT:
        intent = _intent(chain)
        if intent.closes_position:
            return _ask(chain, FindClose(chain.symbol, _close_search_start(intent, step)))
        return _ask(chain, LookUpOrder(intent.client_order_id))
    purpose = ReadPurpose.SUPERVISE if fired.kind is TimerKind.POLL else ReadPurpose.CANCEL_CHECK
    return _ask(chain, ReadOrder(_broker_order_id(chain), purpose))


# ---------------------------------------------------------------------- pricing


def _price_with_quote(chain: Chain, raw: Quote | None, step: _Step) -> Decision:
    """Without a usable quote, ask again (0.3 s, then 0.6 s later) while EXEC_QUOTE_WAIT_S
    allows; then size with whatever quote there is. A quote that prices no limit above zero is
    bad: see `_bad_quote`."""
    quote = pricing.usable_quote(raw)
    limit = pricing.initial_limit_price(chain.side, quote) if quote is not None else None
    if quote is not None and limit is not None and limit <= 0:
        return _bad_quote(chain, quote, step)
    attempts = chain.quote_attempts + 1
    started = chain.pricing_started_at or step.now
    pause_s = QUOTE_PAUSE_S * 2 ** (attempts - 1)
    waited_s = (step.now - started).total_seconds()
    if (
        quote is None
        and attempts < QUOTE_ATTEMPTS
        and waited_s + pause_s <= step.policy.quote_wait_s
    ):
        return _done(
            replace(chain, quote_attempts=attempts, pricing_started_at=started),
            TimerRequest(chain.key, TimerKind.PRICE, step.now + timedelta(seconds=pause_s)),
        )
    return _ask(
        replace(chain, quote_attempts=attempts, quote=quote),
        ReadSizingFacts(chain.symbol, with_position=chain.side is Side.SELL),
    )


def _bad_quote(chain: Chain, quote: Quote, step: _Step) -> Decision:
    """A quote whose limit price comes out at or below zero is asked for once more; bad again,
    the last trade prices the order. Never a $0.01 limit
    (docs/trading-rules.md, Limit pricing)."""
    seen = f"bid {quote.bid}, ask {quote.ask}"
    if not chain.requoted:
        step.note(f"the quote for {chain.symbol} ({seen}) prices no limit above $0; asking again")
        return _ask(replace(chain, requoted=True), ReadQuote(chain.symbol, "price"))
    step.note(f"the quote for {chain.symbol} ({seen}) is bad again; pricing from the last trade")
    return _ask(chain, ReadLastTrade(chain.symbol))


def _price_from_last_trade(chain: Chain, read: LastTradeRead, step: _Step) -> Decision:
    """Size and price at the last trade; without one the order is skipped with the reason."""
    limit = pricing.last_trade_limit_price(read.price) if read.price is not None else None
    if limit is None:
        reason = (
            f"skipped: no limit price for {chain.symbol}: its quote priced none above $0 twice "
            "and it has no last trade"
        )
        return _done(replace(chain, state=ChainState.SKIPPED, error_message=reason))
    return _ask(
        replace(chain, quote=None, trade_price=limit),
        ReadSizingFacts(chain.symbol, with_position=chain.side is Side.SELL),
    )


def _size_and_price(chain: Chain, facts: SizingFactsRead, step: _Step) -> Decision:
    """Size the plan item's dollars at the quote's mid, check the order before the broker sees
    it, and ask for a limit order inside the spread; without a limit price, the market path."""
    asset = facts.asset
    position_qty, qty_available = _holding(facts)
    quote = chain.quote
    sized = sizing.size_order(
        side=chain.side,
        trade_amount=chain.trade_amount,
        liquidation=chain.liquidation,
        price=quote.mid() if quote is not None else chain.trade_price,
        position_qty=position_qty,
        qty_available=qty_available,
        asset=asset,
        min_notional_usd=step.policy.min_notional_usd,
    )
    chain = replace(
        chain, fractionable=asset is not None and asset.fractionable, asset_known=asset is not None
    )
    if sized.outcome is sizing.SizingOutcome.SKIPPED:
        return _done(replace(chain, state=ChainState.SKIPPED, error_message=sized.reason))
    if sized.outcome is sizing.SizingOutcome.FAILED:
        message = f"{sized.reason} for {chain.symbol}: no usable quote"
        return _done(replace(chain, state=ChainState.FAILED, error_message=message))
    chain = replace(chain, requested_qty=sized.qty)
    if _closes_position(chain, sized.qty):
        return _request(chain, step, "market", sized.qty, None, "initial")
    checked = sizing.preflight(chain.symbol, sized.qty, asset)
    if not checked.valid:
        step.emitter.emit(
            OrderRejected,
            step.workflow.plan_event_id,
            **_fields(chain, _client_order_id(chain, step, 1), 1, None),
            reason=checked.message or "invalid order",
            broker_code=checked.code.value if checked.code else None,
            retryable=False,
        )
        return _done(replace(chain, state=ChainState.FAILED, error_message=checked.message))
    if checked.asset_unknown:
        step.note(
            f"{chain.symbol} is unknown to the broker's asset list; the order is sent without the "
            "asset checks and the broker has the last word"
        )
    chain = replace(chain, requested_qty=checked.qty)
    limit = (
        pricing.initial_limit_price(chain.side, quote) if quote is not None else chain.trade_price
    )
    if limit is None:
        return _market_path(chain, "fallback", step)
    chain = replace(chain, anchor=limit, price_history=(limit,))
    return _request(chain, step, "limit", checked.qty, limit, "initial")


def _holding(facts: SizingFactsRead) -> tuple[Decimal | None, Decimal | None]:
    """(position, available) for sizing: unknown for a BUY or a failed read, zero for no
    position."""
    if not facts.asked.with_position or facts.position_failed:
        return None, None
    if facts.position is None:
        return Decimal(0), Decimal(0)
    return facts.position.qty, facts.position.qty_available


def _market_path(chain: Chain, reason: RequestReason, step: _Step) -> Decision:
    """Check the order, then ask for a MARKET order for what the chain still lacks; a BUY
    first reads the buying power."""
    remaining = sizing.remaining_quantity(chain.requested_qty, chain.filled_qty)
    if _closes_position(chain, remaining):
        return _request(chain, step, "market", remaining, None, reason)
    asset = sizing.AssetInfo(True, chain.fractionable) if chain.asset_known else None
    checked = sizing.preflight(chain.symbol, remaining, asset)
    if not checked.valid:
        return _done(_end_without_order(chain, checked.message or "invalid order"))
    if chain.side is Side.BUY:
        return _ask(chain, ReadBuyingPower(chain.symbol, checked.qty, reason))
    return _request(chain, step, "market", checked.qty, None, reason)


def _market_buy_if_affordable(chain: Chain, read: BuyingPowerRead, step: _Step) -> Decision:
    """A market BUY the buying power does not cover waits 1, 2, 4, 8 s for it and fails once
    EXEC_MARKET_BP_CHECKS are used up; a failed account read skips the check, and so does a
    BUY without any price."""
    asked = read.asked
    quote = pricing.usable_quote(read.quote) or chain.quote
    mid = quote.mid() if quote is not None else None
    shortfall = (
        sizing.market_buy_shortfall(chain.symbol, asked.qty, mid, read.buying_power)
        if read.buying_power is not None
        else None
    )
    if shortfall is None:
        return _request(chain, step, "market", asked.qty, None, asked.reason)
    checks = chain.bp_checks + 1
    if checks >= step.policy.market_bp_checks:
        return _done(_end_without_order(replace(chain, bp_checks=checks), shortfall))
    return _done(
        replace(chain, state=ChainState.PRICING, bp_checks=checks),
        TimerRequest(
            chain.key,
            TimerKind.MARKET_BP,
            step.now + timedelta(seconds=doubling_wait_s(checks)),
            {"reason": asked.reason},
        ),
    )


# ---------------------------------------------------------------------- submission


def _after_look_up(chain: Chain, looked_up: OrderLookedUp, step: _Step) -> Decision:
    """An intent the broker already holds (after a crash or a lost answer) is taken as placed
    and never sent twice; one it lacks is submitted, or retried after a failed submission."""
    if looked_up.order is not None:
        return _accepted(chain, looked_up.order, step)
    if not step.may_submit():
        return _done(_unplaced(_close(chain, "unplaced"), step))
    failure = looked_up.asked.failure
    if failure is None:
        return _ask(chain, SubmitOrder(_order_request(chain)))
    return _retry_or_give_up(chain, failure, looked_up.jitter, step)


def _after_submission(chain: Chain, answer: SubmitAnswered, step: _Step) -> Decision:
    error = answer.error
    if error is None:
        assert answer.order is not None, "a submission answers an order or an error"
        return _accepted(chain, answer.order, step)
    if isinstance(error, InsufficientQtyAvailableError):
        return _insufficient_qty(chain, error, step)
    if error.rule in ACCOUNT_RULES:
        return _refused_by_account_rule(chain, error, step)
    if error.rule == OrderRule.FRACTIONABLE.value and not chain.whole_shares_retry_used:
        return _as_whole_shares(chain, error, step)
    if not error.retryable:
        return _rejected(chain, error.message, error.code, False, step)
    return _ask(chain, LookUpOrder(_intent(chain).client_order_id, failure=error))


def _as_whole_shares(chain: Chain, error: BrokerError, step: _Step) -> Decision:
    """A fractional quantity the broker refused as not fractionable (its asset list said
    otherwise, or did not answer): a full exit closes the position instead; any other order is
    asked again once as whole shares, rounded down (none left ends the chain)."""
    order = _intent(chain)
    _record_rejection(chain, step, error.message, code=error.code)
    chain = replace(
        _close(chain, "rejected"),
        fractionable=False,
        asset_known=True,
        whole_shares_retry_used=True,
    )
    remaining = sizing.remaining_quantity(chain.requested_qty, chain.filled_qty)
    if _closes_position(chain, remaining):
        return _request(chain, step, "market", remaining, None, order.reason)
    whole = sizing.truncate_quantity(order.qty, fractionable=False)
    if whole <= 0:
        return _done(_end(chain, error.message))
    return _request(chain, step, order.kind, whole, order.limit_price, order.reason)


def _retry_or_give_up(chain: Chain, failure: BrokerError, jitter: float, step: _Step) -> Decision:
    """A retryable failure is retried after 1, 2, 4 … s (or the broker's Retry-After), up to
    BROKER_RETRIES times; then the order counts as rejected (retryable)."""
    order = _intent(chain)
    tries = order.submit_tries + 1
    if tries > step.policy.broker_retries:
        reason = f"{failure.message} (gave up after {tries} submissions)"
        return _rejected(chain, reason, failure.code, True, step)
    retry_after = failure.retry_after_s if isinstance(failure, RateLimitedError) else None
    wait_s = backoff_s(tries, retry_after, jitter)
    return _done(
        replace(chain, order=replace(order, submit_tries=tries)),
        TimerRequest(chain.key, TimerKind.SUBMIT, step.now + timedelta(seconds=wait_s)),
    )


def _accepted(chain: Chain, placed: Order, step: _Step) -> Decision:
    """The broker holds the order: record it and supervise it from what the broker reports."""
    order = _intent(chain)
    if placed.status is OrderStatus.REJECTED and placed.filled_qty == 0:
        return _rejected_on_acceptance(chain, placed, step)
    step.emitter.emit(
        OrderSubmitted,
        order.requested_event_id,
        **_order_fields(chain, order, placed.order_id),
        status=placed.broker_status,
    )
    order = replace(order, broker_order_id=placed.order_id, placed_at=step.now)
    decision = _observe(replace(chain, state=ChainState.WORKING, order=order), placed, step)
    if decision.chain.state is ChainState.WORKING and not decision.timers:
        return _done(decision.chain, _next_poll(decision.chain, step))
    return decision


def _rejected_on_acceptance(chain: Chain, placed: Order, step: _Step) -> Decision:
    """An order the broker accepted as `rejected`: a limit falls back to a market order for the
    rest at once; a market order ends the chain."""
    order = _intent(chain)
    reason = f"order {order.client_order_id} rejected by the broker ({placed.broker_status})"
    _record_rejection(chain, step, reason, broker_order_id=placed.order_id)
    chain = _close(
        replace(chain, order=replace(order, broker_order_id=placed.order_id)), "rejected"
    )
    if order.kind != "market":
        remaining = sizing.remaining_quantity(chain.requested_qty, chain.filled_qty)
        return _request(chain, step, "market", remaining, None, "fallback")
    return _done(_end(chain, reason))


def _rejected(
    chain: Chain, reason: str, code: str | None, retryable: bool, step: _Step
) -> Decision:
    """A refused submission is an `OrderRejected`; a limit falls back to the market path, a
    market order ends the chain."""
    order = _intent(chain)
    _record_rejection(chain, step, reason, code=code, retryable=retryable)
    chain = _close(chain, "rejected")
    if order.kind != "market":
        return _market_path(chain, "fallback", step)
    return _done(_end(chain, reason))


ACCOUNT_RULES = frozenset(
    {
        OrderRule.WASH_TRADE.value,
        OrderRule.PATTERN_DAY_TRADER.value,
        OrderRule.DAY_TRADING_BUYING_POWER.value,
    }
)
"""Alpaca's protections of the account (docs/trading-rules.md, Alpaca order rules): a market
order for the rest would be refused the same way, so the chain ends at once."""


def _refused_by_account_rule(chain: Chain, error: BrokerError, step: _Step) -> Decision:
    """The chain fails with the rule named, and no market fallback."""
    rule = (error.rule or "").replace("_", " ")
    reason = f"{chain.side} {chain.symbol} refused under Alpaca's {rule} rule: {error.message}"
    _record_rejection(chain, step, reason, code=error.code)
    return _done(_end(_close(chain, "rejected"), reason))


def _insufficient_qty(chain: Chain, error: InsufficientQtyAvailableError, step: _Step) -> Decision:
    """An "insufficient qty available" refusal: resubmit once with the available quantity;
    none left, or a second refusal, ends the chain."""
    order = _intent(chain)
    _record_rejection(chain, step, error.message, code=error.code)
    chain = _close(chain, "rejected")
    available = error.available_qty
    if available is not None and available <= pricing.EXHAUSTED_QTY:
        return _done(_end(chain, error.message))
    if available is None or chain.qty_retry_used:
        return _done(_end(chain, error.message))
    qty = sizing.truncate_quantity(available, chain.fractionable)
    if qty <= 0:
        return _done(_end(chain, error.message))
    chain = replace(chain, qty_retry_used=True)
    return _request(chain, step, order.kind, qty, order.limit_price, order.reason)


# ---------------------------------------------------------------------- exact exits


CLOSE_SEARCH_SKEW_S = 60
"""How far the broker's clock may run behind ours when a close is looked for."""


def _closes_position(chain: Chain, qty: Decimal) -> bool:
    """A full exit whose quantity the broker would not take as an order: a fractional quantity
    of an asset that is not fractionable (or not known to be), or one worth under the minimum
    notional. The broker's close-position call sells exactly what is held instead
    (docs/trading-rules.md, Exact exits); `_request` turns such an order into the call."""
    if not chain.liquidation or qty <= 0 or not order_rules.is_fractional(qty):
        return False
    if not chain.fractionable:
        return True
    price = pricing.remainder_reference_price(chain.side, chain.quote) or chain.trade_price
    return price is not None and qty * price < order_rules.MINIMUM_NOTIONAL


def _after_close_search(chain: Chain, found: CloseFound, step: _Step) -> Decision:
    """A close the broker already made (after a crash, or an answer lost) is taken as placed and
    never made twice; a failed listing waits and looks again; none found makes the call, or
    retries it after a failed one."""
    if found.order is not None:
        return _accepted(chain, found.order, step)
    if found.error is not None:
        return _retry_or_give_up(chain, found.error, found.jitter, step)
    if found.asked.failure is not None:
        return _retry_or_give_up(chain, found.asked.failure, found.jitter, step)
    return _ask(chain, ClosePosition(chain.symbol))


def _after_close(chain: Chain, answer: CloseAnswered, step: _Step) -> Decision:
    error = answer.error
    if error is None and answer.order is not None:
        return _accepted(chain, answer.order, step)
    if error is None:
        reason = f"no position in {chain.symbol} left to close"
        return _done(_end(_close(chain, "rejected"), reason))
    if not error.retryable:
        return _rejected(chain, error.message, error.code, False, step)
    return _ask(chain, FindClose(chain.symbol, _close_search_start(_intent(chain), step), error))


def _close_search_start(intent: OrderIntent, step: _Step) -> datetime:
    """Orders are listed from the intent's time less CLOSE_SEARCH_SKEW_S, since the broker's
    clock may run behind ours."""
    requested_at = intent.requested_at or step.now
    return requested_at - timedelta(seconds=CLOSE_SEARCH_SKEW_S)


# ---------------------------------------------------------------------- supervision


def _supervise(chain: Chain, read: OrderRead, step: _Step) -> Decision:
    """Poll the working order: record fills and ends; a limit still working after
    EXEC_FILL_WAIT_S is cancelled to re-peg (EXEC_MAX_REPEGS times) or escalate; a market
    order still working after EXEC_FINAL_WAIT_S is cancelled for good."""
    if read.error is not None:
        return _done(chain, _next_poll(chain, step))
    if read.order is None:
        return _done(_end(_close(chain, "rejected"), "order not found at the broker"))
    decision = _observe(chain, read.order, step)
    chain = decision.chain
    if chain.state is not ChainState.WORKING or decision.timers:
        return decision
    if not step.may_submit():
        return _ask(chain, CancelOrder(_broker_order_id(chain), "close"))
    order = _intent(chain)
    assert order.placed_at is not None, "a working order was placed"
    age_s = (step.now - order.placed_at).total_seconds()
    if order.kind == "market":
        if age_s < step.policy.final_wait_s:
            return _done(chain, _next_poll(chain, step))
        return _ask(chain, CancelOrder(_broker_order_id(chain), "leftover"))
    if age_s < step.policy.fill_wait_s:
        return _done(chain, _next_poll(chain, step))
    purpose: Literal["repeg", "escalation"] = (
        "repeg" if chain.checks < step.policy.max_repegs else "escalation"
    )
    return _ask(
        replace(chain, checks=chain.checks + 1), CancelOrder(_broker_order_id(chain), purpose)
    )


def _observe(chain: Chain, current: Order, step: _Step) -> Decision:
    """Record what the broker reports of the working order: filled ends the chain filled;
    ended by the broker with a remainder asks a market order for it."""
    order = replace(
        _intent(chain), filled_qty=current.filled_qty, filled_avg_price=current.filled_avg_price
    )
    chain = replace(chain, order=order)
    if current.status is OrderStatus.FILLED:
        _filled_event(chain, current, True, step)
        return _done(_end(_close(chain, "filled"), None))
    if not current.is_terminal:
        return _done(chain)
    if current.filled_qty > 0:
        _filled_event(chain, current, False, step)
    expired = current.broker_status.strip().lower() == "expired"
    if current.status is OrderStatus.CANCELED or expired:
        step.emitter.emit(
            OrderCancelled,
            order.requested_event_id,
            **_order_fields(chain, order, current.order_id),
            filled_qty=current.filled_qty,
            reason="expired" if expired else "broker",
        )
    else:
        reason = f"order rejected by the broker ({current.broker_status})"
        _record_rejection(chain, step, reason, broker_order_id=current.order_id)
    chain = _close(chain, current.broker_status)
    return _remainder(chain, order.kind, step)


def _remainder(chain: Chain, kind: AttemptKind, step: _Step) -> Decision:
    """After the broker ended a limit order, what is left (unless negligible) goes to market;
    after it ended a market order, the chain ends."""
    remaining = sizing.remaining_quantity(chain.requested_qty, chain.filled_qty)
    if kind == "market" or _negligible(chain, remaining, chain.quote, step):
        return _done(_end(chain, "order ended at the broker unfilled"))
    return _request(chain, step, "market", remaining, None, "residual")


def _after_cancel(chain: Chain, answer: CancelAnswered, step: _Step) -> Decision:
    """A cancel for a re-peg or an escalation: if the broker refused it the check is skipped
    (it still counts); else read how the order ended."""
    if answer.error is not None:
        step.note("cancel failed; the check is skipped", answer.error)
        return _done(chain, _next_poll(chain, step))
    assert answer.result is not None, "a cancel answers a result or an error"
    purpose = answer.asked.purpose
    assert purpose != "leftover"
    chain = replace(chain, cancel_purpose=purpose)
    read = (
        ReadPurpose.CONFIRM_CANCEL
        if answer.result.outcome is CancelOutcome.ALREADY_TERMINAL
        else ReadPurpose.AFTER_CANCEL
    )
    return _ask(chain, ReadOrder(_broker_order_id(chain), read))


def _after_cancel_read(chain: Chain, current: Order | None, step: _Step) -> Decision:
    """Most cancels are confirmed at once; one the broker has not ended yet (`pending_cancel`)
    is tracked to its end (`_check_cancel`)."""
    if current is not None and current.is_terminal:
        return _confirm_cancel(chain, current, step)
    deadline = step.now + timedelta(seconds=step.policy.cancel_confirm_s)
    chain = replace(chain, state=ChainState.CANCELLING, cancel_deadline=deadline)
    return _done(_with_fill_so_far(chain, current), _cancel_timer(chain, step))


def _check_cancel(chain: Chain, read: OrderRead, step: _Step) -> Decision:
    """An unconfirmed cancel is read again every min(EXEC_POLL_S, EXEC_CANCEL_CONFIRM_S) until
    the order is final, however long that takes (a DAY order ends at the close at the latest):
    the order may still fill, so nothing more is sent for the chain until its fill is known.
    Past EXEC_CANCEL_CONFIRM_S a warning says so, once."""
    current = read.order
    if read.error is None and current is None:
        return _confirm_cancel(chain, None, step)
    if current is not None and current.is_terminal:
        return _confirm_cancel(chain, current, step)
    chain = _with_fill_so_far(chain, current)
    if chain.cancel_deadline is not None and step.now >= chain.cancel_deadline:
        step.note(
            f"the cancel of {chain.symbol}'s order {_broker_order_id(chain)} is not confirmed "
            f"after {step.policy.cancel_confirm_s:g} s; it is tracked until the order ends"
        )
        chain = replace(chain, cancel_deadline=None)
    return _done(chain, _cancel_timer(chain, step))


def _with_fill_so_far(chain: Chain, current: Order | None) -> Chain:
    """The chain with what the broker reports filled of its order still being cancelled."""
    if current is None:
        return chain
    order = replace(
        _intent(chain), filled_qty=current.filled_qty, filled_avg_price=current.filled_avg_price
    )
    return replace(chain, order=order)


def _confirm_cancel(chain: Chain, current: Order | None, step: _Step) -> Decision:
    """The order is final after the cancel (or had already ended): "already filled" ends the
    chain filled with no re-peg; otherwise its fill is counted and the re-peg or escalation
    goes on for the remainder; a cancelled leftover ends the chain."""
    if current is None:
        return _done(_end(_close(chain, "rejected"), "order not found at the broker"))
    if chain.cancel_purpose == "leftover":
        return _end_leftover(chain, current, step)
    chain, ended = _absorb_fills(chain, current, step)
    if ended is not None:
        return _done(ended)
    order = _intent(chain)
    purpose = chain.cancel_purpose or "escalation"
    step.emitter.emit(
        OrderCancelled,
        order.requested_event_id,
        **_order_fields(chain, order, current.order_id),
        filled_qty=current.filled_qty,
        reason=purpose,
    )
    chain = _close(replace(chain, cancel_purpose=None, cancel_deadline=None), "canceled")
    if purpose == "close":
        return _done(_unplaced(chain, step))
    if purpose == "escalation":
        return _market_remainder(chain, "escalation", step)
    return _ask(chain, ReadQuote(chain.symbol, "repeg"))


def _repeg(chain: Chain, raw: Quote | None, step: _Step) -> Decision:
    """A remainder worth chasing is re-pegged through the spread; without a new price (no
    quote, or the price would not move) it goes to market."""
    quote = pricing.usable_quote(raw)
    remaining = sizing.remaining_quantity(chain.requested_qty, chain.filled_qty)
    if _negligible(chain, remaining, quote, step):
        return _done(_end(chain, None))
    price = (
        pricing.repeg_price(chain.side, chain.anchor, quote, chain.price_history)
        if quote is not None
        else None
    )
    if price is None:
        return _market_remainder(chain, "escalation", step)
    chain = replace(chain, quote=quote, anchor=price, price_history=(*chain.price_history, price))
    return _request(chain, step, "repeg", remaining, price, "repeg")


def _market_remainder(chain: Chain, reason: RequestReason, step: _Step) -> Decision:
    remaining = sizing.remaining_quantity(chain.requested_qty, chain.filled_qty)
    if _negligible(chain, remaining, chain.quote, step):
        return _done(_end(chain, None))
    return _market_path(chain, reason, step)


def _after_leftover_cancel(chain: Chain, answer: CancelAnswered, step: _Step) -> Decision:
    """A cancel of the leftover market order the broker did not take is tried again at the next
    poll: the chain never ends while its order may still work."""
    if answer.error is not None:
        step.note("leftover cancel failed; retried at the next poll", answer.error)
        return _done(chain, _next_poll(chain, step))
    return _ask(chain, ReadOrder(_broker_order_id(chain), ReadPurpose.LEFTOVER))


def _end_leftover(chain: Chain, current: Order | None, step: _Step) -> Decision:
    """The leftover market order is cancelled: once it is final the chain is filled if anything
    filled, else failed; while it is not (`pending_cancel`), it is tracked like any cancel."""
    if current is not None and not current.is_terminal:
        return _after_cancel_read(replace(chain, cancel_purpose="leftover"), current, step)
    if current is not None:
        chain, ended = _absorb_fills(chain, current, step)
        if ended is not None:
            return _done(ended)
    order = _intent(chain)
    step.emitter.emit(
        OrderCancelled,
        order.requested_event_id,
        **_order_fields(chain, order, order.broker_order_id),
        filled_qty=order.filled_qty,
        reason="leftover",
    )
    return _done(_end(_close(replace(chain, cancel_purpose=None), "canceled"), None))


# ---------------------------------------------------------------------- chain bookkeeping


def _request(
    chain: Chain,
    step: _Step,
    kind: AttemptKind,
    qty: Decimal,
    limit_price: Decimal | None,
    reason: RequestReason,
) -> Decision:
    """Intent first: record `OrderRequested` under the next client order id; the broker is
    called by the `submit` timer after this commits. Past the close guard nothing new is
    recorded: the chain ends with what it has. A full exit's quantity the broker would not take
    as an order becomes a close-position call (`_closes_position`), at market. A dry run's chain
    ends here instead, with the intent it would have recorded and nothing sent."""
    if not step.may_submit():
        return _done(_unplaced(chain, step))
    closes = _closes_position(chain, qty)
    if closes:
        kind, limit_price = "market", None
    else:
        valued_at = limit_price or pricing.remainder_reference_price(chain.side, chain.quote)
        if sizing.under_broker_minimum(qty, valued_at):
            return _done(_under_broker_minimum(chain, qty, valued_at))
    previous = chain.order
    attempt = previous.attempt + 1 if previous is not None else 1
    intent = OrderIntent(
        requested_at=step.now,
        client_order_id=_client_order_id(chain, step, attempt),
        attempt=attempt,
        kind=kind,
        qty=qty,
        limit_price=limit_price if kind != "market" else None,
        reason=reason,
        requested_event_id=step.workflow.plan_event_id,
        closes_position=closes,
    )
    if step.workflow.preview:
        return _done(replace(chain, state=ChainState.PREVIEWED, order=intent))
    event = step.emitter.emit(
        OrderRequested,
        previous.requested_event_id if previous is not None else step.workflow.plan_event_id,
        **_fields(chain, intent.client_order_id, attempt, None),
        qty=qty,
        order_type="MARKET" if kind == "market" else "LIMIT",
        limit_price=intent.limit_price,
        reason=reason,
        quote=chain.quote,
    )
    intent = replace(intent, requested_event_id=str(event.event_id))
    return _done(
        replace(chain, state=ChainState.REQUESTED, order=intent),
        TimerRequest(chain.key, TimerKind.SUBMIT, step.now),
    )


def _record_rejection(
    chain: Chain,
    step: _Step,
    reason: str,
    *,
    code: str | None = None,
    retryable: bool = False,
    broker_order_id: str | None = None,
) -> None:
    order = _intent(chain)
    step.emitter.emit(
        OrderRejected,
        order.requested_event_id,
        **_order_fields(chain, order, broker_order_id),
        reason=reason,
        broker_code=code,
        retryable=retryable,
    )


def _order_request(chain: Chain) -> OrderRequest:
    order = _intent(chain)
    return OrderRequest(
        symbol=chain.symbol,
        side=chain.side,
        qty=order.qty,
        order_type=OrderType.MARKET if order.kind == "market" else OrderType.LIMIT,
        client_order_id=order.client_order_id,
        limit_price=order.limit_price,
    )


def _close(chain: Chain, status: str) -> Chain:
    """Move the current order's fill into the chain's totals and its record into attempts;
    the order stays as the chain's last one for reporting."""
    order = chain.order
    if order is None:
        return chain
    value = (
        order.filled_qty * order.filled_avg_price
        if order.filled_avg_price is not None
        else Decimal(0)
    )
    record = AttemptRecord(
        kind=order.kind,
        client_order_id=order.client_order_id,
        limit_price=order.limit_price,
        broker_order_id=order.broker_order_id,
        status=status,
    )
    return replace(
        chain,
        closed_filled_qty=chain.closed_filled_qty + order.filled_qty,
        closed_filled_value=chain.closed_filled_value + value,
        order=replace(order, filled_qty=Decimal(0), filled_avg_price=None),
        attempts=(*chain.attempts, record),
    )


def _end(chain: Chain, error: str | None) -> Chain:
    """A chain with any fill ends filled (a partial fill counts); else failed."""
    if chain.filled_qty > 0:
        return replace(chain, state=ChainState.FILLED, error_message=None)
    return replace(chain, state=ChainState.FAILED, error_message=error or chain.error_message)


def _unplaced(chain: Chain, step: _Step) -> Chain:
    """The close guard, or a halt, ends the chain with what it has: filled if anything filled,
    else failed; the reason names the guard or the halt (docs/trading-rules.md, Close guard)."""
    reason = f"not placed: {step.halt}" if step.halt else close_guard_reason(step.policy)
    return _end_without_order(replace(chain, unplaced=reason), reason)


def _under_broker_minimum(chain: Chain, qty: Decimal, price: Decimal | None) -> Chain:
    """An order the broker would refuse as a fractional order worth under its minimum is not
    sent: the chain ends skipped, or filled with what earlier orders filled
    (docs/trading-rules.md, Alpaca order rules)."""
    if chain.filled_qty > 0:
        return replace(chain, state=ChainState.FILLED)
    reason = (
        f"{sizing.BELOW_MIN_NOTIONAL}: {qty} {chain.symbol} at {price} is worth under the "
        f"broker's ${order_rules.MINIMUM_NOTIONAL} minimum for a fractional order"
    )
    return replace(chain, state=ChainState.SKIPPED, error_message=reason)


def _end_without_order(chain: Chain, message: str) -> Chain:
    if chain.filled_qty > 0:
        return replace(chain, state=ChainState.FILLED)
    return replace(chain, state=ChainState.FAILED, error_message=message)


def _negligible(chain: Chain, remaining: Decimal, quote: Quote | None, step: _Step) -> bool:
    """A remainder too small to chase (docs/trading-rules.md, Remainders); a full exit leaves
    nothing behind, so only an empty remainder is negligible for it."""
    if chain.liquidation:
        return remaining <= 0
    price = pricing.remainder_reference_price(chain.side, quote)
    return pricing.remaining_is_negligible(
        remaining, chain.fractionable, price, step.policy.min_notional_usd
    )


def _absorb_fills(chain: Chain, current: Order, step: _Step) -> tuple[Chain, Chain | None]:
    """Carry the broker's fills of the working order onto the chain (reporting them); the
    second value is the ended chain when the order is completely filled."""
    order = replace(
        _intent(chain), filled_qty=current.filled_qty, filled_avg_price=current.filled_avg_price
    )
    chain = replace(chain, order=order)
    if current.status is OrderStatus.FILLED:
        _filled_event(chain, current, True, step)
        return chain, _end(_close(chain, "filled"), None)
    if current.filled_qty > 0:
        _filled_event(chain, current, False, step)
    return chain, None


def _filled_event(chain: Chain, current: Order, complete: bool, step: _Step) -> None:
    order = _intent(chain)
    price = current.filled_avg_price or order.limit_price
    if current.filled_qty <= 0 or price is None:
        if current.filled_qty > 0:
            step.note("fill reported without a price; OrderFilled not recorded")
        return
    step.emitter.emit(
        OrderFilled,
        order.requested_event_id,
        **_order_fields(chain, order, current.order_id),
        filled_qty=current.filled_qty,
        avg_fill_price=price,
        complete=complete,
    )


def _order_fields(
    chain: Chain, order: OrderIntent, broker_order_id: str | None
) -> dict[str, object]:
    """The fields of an event about an order already requested: under the client order id its
    intent recorded (an id of an earlier format stays that order's id)."""
    return _fields(chain, order.client_order_id, order.attempt, broker_order_id)


def _fields(
    chain: Chain, client_order_id: str, attempt: int, broker_order_id: str | None
) -> dict[str, object]:
    return {
        "client_order_id": client_order_id,
        "symbol": chain.symbol,
        "side": chain.side,
        "phase": chain.side,
        "attempt": attempt,
        "broker_order_id": broker_order_id,
    }


def _client_order_id(chain: Chain, step: _Step, attempt: int) -> str:
    return client_order_id(step.workflow.workflow_id, chain.symbol, chain.side, attempt)


def _next_poll(chain: Chain, step: _Step) -> TimerRequest:
    """Poll every EXEC_POLL_S, but exactly at the age that calls for the next action (the
    re-peg at EXEC_FILL_WAIT_S, the leftover cancel at EXEC_FINAL_WAIT_S) and at the start of
    the close guard. With a request budget the interval grows with the workflow's live chains,
    so polling alone stays within its part of execution's share."""
    wait_s = _poll_interval_s(step)
    order = chain.order
    if order is not None and order.placed_at is not None:
        limit_s = step.policy.final_wait_s if order.kind == "market" else step.policy.fill_wait_s
        until_s = limit_s - (step.now - order.placed_at).total_seconds()
        if until_s > 0:
            wait_s = min(wait_s, until_s)
    close = step.workflow.session_close
    if close is not None:
        until_guard_s = (close - step.now).total_seconds() - step.policy.close_margin_s
        if until_guard_s > 0:
            wait_s = min(wait_s, until_guard_s)
    return TimerRequest(chain.key, TimerKind.POLL, step.now + timedelta(seconds=wait_s))


def _poll_interval_s(step: _Step) -> float:
    budget = step.policy.poll_budget
    if budget is None:
        return step.policy.poll_s
    live = sum(1 for chain in step.workflow.chains if not chain.ended)
    return max(step.policy.poll_s, budget.poll_interval_s(live))


def _cancel_timer(chain: Chain, step: _Step) -> TimerRequest:
    wait_s = min(step.policy.poll_s, step.policy.cancel_confirm_s)
    return TimerRequest(chain.key, TimerKind.CANCEL_CHECK, step.now + timedelta(seconds=wait_s))


def _intent(chain: Chain) -> OrderIntent:
    assert chain.order is not None, "a chain past pricing has an intent"
    return chain.order


def _broker_order_id(chain: Chain) -> str:
    order = _intent(chain)
    assert order.broker_order_id is not None, "a working order has a broker order id"
    return order.broker_order_id


def _ask(chain: Chain, command: Command) -> Decision:
    return Decision(chain, command=command)


def _done(chain: Chain, *timers: TimerRequest) -> Decision:
    return Decision(chain, timers=timers)
