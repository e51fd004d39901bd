"""The workflow half of the execution state machine
(docs/trading-rules.md, Execution state machine), pure: which phase comes next, which chains and
timers it opens, and the verdict events that end it.

No I/O and no clock: each function takes the workflow's state, what was observed (a chain's
step, the stale orders' fate, the buying power), `now` and the policy, and returns the new
state plus the events to record and the timers to arm, so the transitions are tested without a
broker or a database. The chain half is `chain.py`; the shell that reads the broker is
`steps.py`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

from services.execution import sizing
from services.execution.classification import (
    OrderOutcome,
    classify_execution,
    no_trades_verdict,
)
from services.execution.policy import ExecutionPolicy
from services.execution.state import (
    Chain,
    ChainState,
    OpenOrderSeen,
    WorkflowExecution,
    WorkflowPhase,
)
from shared.broker.models import Order
from shared.events import (
    CLIENT_ORDER_ID_PREFIX,
    Event,
    OpenOrder,
    OrdersPreviewed,
    PreviewedOrder,
)
from shared.events.trades import (
    ExecutionData,
    OrderAttempt,
    OrderResult,
    SkippedItem,
    TradeExecuted,
)
from shared.events.workflow import CompletionSummary, WorkflowCompleted, WorkflowFailed
from shared.trading import Side

SERVICE = "execution"
WORKFLOW_SCOPE = ""
"""The `chain` of a timer that belongs to the workflow rather than to one order chain."""
QUOTE_ATTEMPTS = 3
QUOTE_PAUSE_S = 0.3
BACKOFF_JITTER = 0.2

E = TypeVar("E", bound=Event)


class TimerKind(StrEnum):
    STALE_CHECK = "stale_check"
    """Have the stale own orders we cancelled ended yet (docs/trading-rules.md, Stale orders)."""
    BP_CHECK = "bp_check"
    """Buying power between the phases (docs/trading-rules.md, Settlement)."""
    PRICE = "price"
    """Quote, size, check and price a chain's first order
    (docs/trading-rules.md, Quotes / Sizing / Pre-flight checks / Limit pricing)."""
    MARKET_BP = "market_bp"
    """Buying power before a market BUY (docs/trading-rules.md, Market path)."""
    SUBMIT = "submit"
    """Send the recorded intent (or find it at the broker)."""
    POLL = "poll"
    CANCEL_CHECK = "cancel_check"


@dataclass(frozen=True)
class TimerRequest:
    chain: str
    kind: TimerKind
    due_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepResult:
    """What one step records, in one transaction: events, the new state and the next timers."""

    state: WorkflowExecution
    events: tuple[Event, ...] = ()
    timers: tuple[TimerRequest, ...] = ()

    def then(self, other: StepResult) -> StepResult:
        return StepResult(other.state, self.events + other.events, self.timers + other.timers)


@dataclass
class Emitter:
    """Builds this workflow's events with the envelope filled in: causation = the event that
    caused it (docs/trading-rules.md, Causation)."""

    state: WorkflowExecution
    now: datetime
    events: list[Event] = field(default_factory=list)

    def emit(self, event_class: type[E], causation_id: str, **payload: Any) -> E:
        event = event_class(
            correlation_id=self.state.workflow_id,
            causation_id=causation_id,
            account_id=self.state.account_id,
            occurred_at=self.now,
            source=SERVICE,
            **payload,
        )
        self.events.append(event)
        return event


def backoff_s(attempt: int, retry_after_s: float | None, jitter: float) -> float:
    """A retried submission waits 1·2^(n−1) s plus up to 20 % jitter (`jitter` is a draw in
    [0, 1)), or the broker's Retry-After when that is longer."""
    base = float(2 ** (attempt - 1)) * (1 + BACKOFF_JITTER * jitter)
    return max(base, retry_after_s or 0.0)


def doubling_wait_s(checks_made: int) -> float:
    """1, 2, 4, 8 s between buying-power checks
    (docs/trading-rules.md, Market path / Settlement)."""
    return float(2 ** max(checks_made - 1, 0))


def chains_for(state: WorkflowExecution, side: Side) -> tuple[Chain, ...]:
    """One chain per plan item of the phase, in plan order (docs/trading-rules.md, Phases); HOLDs
    have none."""
    return tuple(
        Chain(
            key=f"{side}:{line.symbol}",
            symbol=line.symbol,
            side=side,
            trade_amount=line.trade_amount,
            liquidation=sizing.is_liquidation(side, line.target_weight),
        )
        for line in state.lines
        if line.action == side
    )


def open_phase(
    state: WorkflowExecution, side: Side, now: datetime, policy: ExecutionPolicy
) -> StepResult:
    """Start the SELL or BUY phase: its chains are priced in plan order, each on a timer due now;
    a phase without items moves straight on."""
    chains = chains_for(state, side)
    if not chains:
        if side is Side.SELL:
            return open_phase(state, Side.BUY, now, policy)
        return finish(replace(state, phase=WorkflowPhase.BUYING), now, policy)
    phase = WorkflowPhase.SELLING if side is Side.SELL else WorkflowPhase.BUYING
    started = tuple(replace(chain, pricing_started_at=now) for chain in chains)
    return StepResult(
        replace(state, phase=phase, chains=state.chains + started),
        timers=tuple(TimerRequest(chain.key, TimerKind.PRICE, now) for chain in started),
    )


def advance(state: WorkflowExecution, now: datetime, policy: ExecutionPolicy) -> StepResult:
    """After a chain step: end the phase once none of its chains is working
    (docs/trading-rules.md, Phases)."""
    if state.phase is WorkflowPhase.SELLING and all(
        chain.ended for chain in state.phase_chains(Side.SELL)
    ):
        sold = [
            chain
            for chain in state.phase_chains(Side.SELL)
            if chain.state is ChainState.FILLED and chain.filled_qty > 0
        ]
        if not sold:
            return open_phase(state, Side.BUY, now, policy)
        released = sum((chain.filled_value for chain in sold), Decimal(0))
        return StepResult(
            replace(state, phase=WorkflowPhase.SETTLING, released=released, settle_checks=0),
            timers=(TimerRequest(WORKFLOW_SCOPE, TimerKind.BP_CHECK, now),),
        )
    if state.phase is WorkflowPhase.BUYING and all(
        chain.ended for chain in state.phase_chains(Side.BUY)
    ):
        return finish(state, now, policy)
    return StepResult(state)


def stale_and_foreign(
    requested: Collection[str], open_orders: Sequence[Order]
) -> tuple[tuple[OpenOrderSeen, ...], tuple[OpenOrderSeen, ...]]:
    """The orders open when a workflow starts: this system's own (`alc:`) of earlier workflows
    are stale (to cancel), the rest of the world's are foreign (left alone, reported); the
    workflow's own, the client order ids of its recorded `OrderRequested` (`requested`), are
    neither. The id itself does not say whose it is
    (docs/trading-rules.md, Client order ids)."""
    stale: list[OpenOrderSeen] = []
    foreign: list[OpenOrderSeen] = []
    for order in open_orders:
        own = order.client_order_id.startswith(CLIENT_ORDER_ID_PREFIX)
        seen = OpenOrderSeen(
            broker_order_id=order.order_id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            qty=order.qty,
            filled_qty=order.filled_qty,
            status=order.broker_status,
            own=own,
        )
        if not own:
            foreign.append(seen)
        elif order.client_order_id not in requested:
            stale.append(seen)
    return tuple(stale), tuple(foreign)


def after_stale_cancel(
    state: WorkflowExecution,
    stale: tuple[OpenOrderSeen, ...],
    foreign: tuple[OpenOrderSeen, ...],
    now: datetime,
    policy: ExecutionPolicy,
) -> StepResult:
    """With the stale orders' cancels asked, the SELL phase opens at once if there were none;
    else it waits for them to end, checked from now on, for at most EXEC_CANCEL_CONFIRM_S. A
    dry run cancels nothing, so it never waits: its stale orders are only reported."""
    state = replace(
        state,
        stale_cancelled=stale,
        foreign_open_orders=foreign,
        stale_deadline=now + timedelta(seconds=policy.cancel_confirm_s),
    )
    if not stale or state.preview:
        return open_phase(state, Side.SELL, now, policy)
    return StepResult(state, timers=(TimerRequest(WORKFLOW_SCOPE, TimerKind.STALE_CHECK, now),))


def after_stale_check(
    state: WorkflowExecution, all_ended: bool, now: datetime, policy: ExecutionPolicy
) -> StepResult:
    """The SELL phase starts once every stale own order we cancelled has ended (a failed read
    counts as not ended), or the cancel confirmation wait has passed; until then the check
    repeats every EXEC_POLL_S."""
    if all_ended or state.stale_deadline is None or now >= state.stale_deadline:
        return open_phase(state, Side.SELL, now, policy)
    return StepResult(
        state,
        timers=(
            TimerRequest(
                WORKFLOW_SCOPE, TimerKind.STALE_CHECK, now + timedelta(seconds=policy.poll_s)
            ),
        ),
    )


def after_settle_check(
    state: WorkflowExecution, buying_power: Decimal | None, now: datetime, policy: ExecutionPolicy
) -> StepResult:
    """The BUY phase starts once buying power covers the released proceeds or the checks are
    used up (the shortfall is only logged); `None` is a failed read, which counts
    (docs/trading-rules.md, Settlement)."""
    checks = state.settle_checks + 1
    covered = buying_power is not None and buying_power >= state.released
    if covered or checks >= policy.settle_checks:
        return open_phase(replace(state, settle_checks=checks), Side.BUY, now, policy)
    return StepResult(
        replace(state, settle_checks=checks),
        timers=(
            TimerRequest(
                WORKFLOW_SCOPE,
                TimerKind.BP_CHECK,
                now + timedelta(seconds=doubling_wait_s(checks)),
            ),
        ),
    )


def finish(state: WorkflowExecution, now: datetime, policy: ExecutionPolicy) -> StepResult:
    """Classify (docs/trading-rules.md, Outcome classification) and record `TradeExecuted`, then
    `WorkflowCompleted` or `WorkflowFailed(trade_execution)`; the workflow is `done`. A dry run
    records what it would have sent instead (`finish_preview`)."""
    if state.preview:
        return finish_preview(state, now)
    emitter = Emitter(state, now)
    chains = state.chains
    verdict = (
        classify_execution(
            [
                OrderOutcome(
                    symbol=chain.symbol,
                    trade_amount=chain.trade_amount,
                    skipped=chain.state is ChainState.SKIPPED,
                    filled=chain.state is ChainState.FILLED,
                )
                for chain in chains
            ],
            policy.treat_partial_as_failure,
        )
        if chains
        else no_trades_verdict()
    )
    trade = emitter.emit(
        TradeExecuted,
        state.plan_event_id,
        success=verdict.success,
        orders_placed=verdict.orders_placed,
        orders_succeeded=verdict.orders_succeeded,
        failure_reason=verdict.failure_reason,
        failed_symbols=verdict.failed_symbols,
        execution_data=ExecutionData(
            plan_id=UUID(state.plan_id),
            orders_placed=verdict.orders_placed,
            orders_succeeded=verdict.orders_succeeded,
            total_trade_value=verdict.total_trade_value,
            execution_timestamp=now,
            success=verdict.raw_success,
            orders=tuple(order_result(chain, now) for chain in chains if not _skipped(chain)),
        ),
        skipped=tuple(
            SkippedItem(symbol=chain.symbol, action=chain.side, reason=chain.error_message)
            for chain in chains
            if _skipped(chain) and chain.error_message
        ),
        stale_orders_cancelled=tuple(open_order(order) for order in state.stale_cancelled),
        foreign_open_orders=tuple(open_order(order) for order in state.foreign_open_orders),
    )
    if verdict.success:
        emitter.emit(
            WorkflowCompleted,
            str(trade.event_id),
            workflow_duration_ms=max(int((now - state.started_at).total_seconds() * 1000), 0),
            summary=CompletionSummary(
                orders_placed=verdict.orders_placed,
                orders_succeeded=verdict.orders_succeeded,
                total_trade_value=verdict.total_trade_value,
                execution_plan_id=UUID(state.plan_id),
            ),
        )
    else:
        emitter.emit(
            WorkflowFailed,
            str(trade.event_id),
            failure_reason=verdict.failure_reason or "trade execution failed",
            failure_step="trade_execution",
            error_details={
                "original_event_type": "RebalancePlanned",
                "original_event_id": state.plan_event_id,
            },
        )
    return StepResult(
        replace(state, phase=WorkflowPhase.DONE),
        events=tuple(emitter.events),
    )


def finish_preview(state: WorkflowExecution, now: datetime) -> StepResult:
    """A dry run's end: `OrdersPreviewed` with each chain's order as it would have been sent (or
    why it would not), then `WorkflowCompleted` with nothing placed
    (docs/trading-rules.md, Dry runs)."""
    emitter = Emitter(state, now)
    previewed = emitter.emit(
        OrdersPreviewed,
        state.plan_event_id,
        plan_id=UUID(state.plan_id),
        orders=tuple(
            previewed_order(chain) for chain in state.chains if chain.state is ChainState.PREVIEWED
        ),
        skipped=tuple(
            SkippedItem(
                symbol=chain.symbol,
                action=chain.side,
                reason=chain.error_message or f"{chain.state.value} before an order was priced",
            )
            for chain in state.chains
            if chain.state is not ChainState.PREVIEWED
        ),
        stale_orders=tuple(open_order(order) for order in state.stale_cancelled),
        foreign_open_orders=tuple(open_order(order) for order in state.foreign_open_orders),
    )
    emitter.emit(
        WorkflowCompleted,
        str(previewed.event_id),
        workflow_duration_ms=max(int((now - state.started_at).total_seconds() * 1000), 0),
        summary=CompletionSummary(
            orders_placed=0,
            orders_succeeded=0,
            total_trade_value=Decimal(0),
            execution_plan_id=UUID(state.plan_id),
        ),
    )
    return StepResult(replace(state, phase=WorkflowPhase.DONE), events=tuple(emitter.events))


def previewed_order(chain: Chain) -> PreviewedOrder:
    order = chain.order
    assert order is not None, "a previewed chain holds the order it would have sent"
    mid = chain.quote.mid() if chain.quote is not None else None
    price = order.limit_price or mid or chain.trade_price
    return PreviewedOrder(
        symbol=chain.symbol,
        side=chain.side,
        trade_amount=chain.trade_amount,
        qty=order.qty,
        order_type="MARKET" if order.kind == "market" else "LIMIT",
        limit_price=order.limit_price,
        estimated_notional=order.qty * price if price is not None else None,
        quote=chain.quote,
        client_order_id=order.client_order_id,
        closes_position=order.closes_position,
    )


def _skipped(chain: Chain) -> bool:
    return chain.state is ChainState.SKIPPED


def order_result(chain: Chain, now: datetime) -> OrderResult:
    """One item of `TradeExecuted.execution_data.orders` (docs/trading-rules.md, Event payloads)."""
    filled = chain.state is ChainState.FILLED
    last_attempt = chain.attempts[-1] if chain.attempts else None
    order = chain.order
    limit_price = order.limit_price if order is not None else None
    order_type = "MARKET" if (order is None or order.kind == "market") else "LIMIT"
    return OrderResult(
        symbol=chain.symbol,
        action=chain.side,
        trade_amount=chain.trade_amount,
        shares=chain.requested_qty,
        price=chain.avg_fill_price or limit_price,
        order_id=(order.broker_order_id if order is not None else None)
        or (last_attempt.broker_order_id if last_attempt else None),
        success=filled,
        error_message=chain.unplaced if filled else chain.error_message,
        timestamp=chain.ended_at or now,
        order_type=order_type,
        filled_at=chain.ended_at if filled else None,
        client_order_id=order.client_order_id if order is not None else None,
        requested_qty=chain.requested_qty,
        filled_qty=chain.filled_qty,
        avg_fill_price=chain.avg_fill_price,
        final_status=final_status(chain),
        attempts=tuple(
            OrderAttempt(
                kind=attempt.kind,
                limit_price=attempt.limit_price,
                broker_order_id=attempt.broker_order_id,
                status=attempt.status,
            )
            for attempt in chain.attempts
        ),
    )


def final_status(chain: Chain) -> str:
    if chain.state is ChainState.FILLED:
        return "filled" if chain.filled_qty >= chain.requested_qty else "partially_filled"
    if chain.state is ChainState.SKIPPED:
        return "skipped"
    if chain.state is ChainState.FAILED and chain.unplaced is not None:
        return "unplaced"
    return "rejected" if chain.state is ChainState.FAILED else chain.state.value


def open_order(order: OpenOrderSeen) -> OpenOrder:
    return OpenOrder(
        broker_order_id=order.broker_order_id,
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        filled_qty=order.filled_qty,
        status=order.status,
        own=order.own,
    )
