"""Execution's shell around the state machine: the `RebalancePlanned` handler that starts a
workflow's execution, and `fire`, which runs a workflow's due timers and returns what they
report for the runtime to commit.

Every step has the same shape (docs/trading-rules.md, Execution state machine): read the state →
broker I/O outside any transaction → ONE transaction that appends the events, saves the state
(optimistic version check), arms the next timers and deletes the timers that fired.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime

import structlog

from services.execution import halt
from services.execution.assets import AssetCache
from services.execution.machine import (
    SERVICE,
    WORKFLOW_SCOPE,
    StepResult,
    TimerKind,
    TimerRequest,
    advance,
    after_stale_cancel,
    finish,
    stale_and_foreign,
)
from services.execution.policy import ExecutionPolicy
from services.execution.state import (
    PlanLine,
    WorkflowExecution,
    WorkflowPhase,
    from_document,
    to_document,
)
from services.execution.steps import ChainSteps
from shared import market_clock
from shared.broker.errors import BrokerError
from shared.broker.port import Broker
from shared.events import Event, OrderRequested, RebalancePlanned
from shared.events.control import TradingHalted
from shared.eventstore import service_state, timers
from shared.eventstore.port import EventStoreReader
from shared.eventstore.store import UnitOfWork
from shared.messaging.consumer import HandlerContext, HandlerOutcome, stream_of
from shared.service.runtime import PeriodicOutcome
from shared.settings import Settings
from shared.workflow import workflow_state

log = structlog.get_logger(__name__)

CONCURRENT_CHAIN_STEPS = 16
"""Chains of one workflow whose reads run at once; bounded so one big plan cannot exhaust the
broker's rate limit or connection pool."""


START_HISTORY = ("WorkflowStarted", "WorkflowCompleted", "WorkflowFailed", "OrderRequested")
"""What starting an execution reads of its workflow: whether it has finished or is a dry run,
when it started, and the orders requested before. Its signal and plan, the largest events, were
a quarter of execution's samples to decode at 10,000 accounts
(docs/performance.md, Statements per workflow)."""


def plan_key(plan_id: str) -> str:
    return f"plan:{plan_id}"


class Executor:
    """Holds one broker per account (made on first use by `brokers`) and steps workflows."""

    def __init__(
        self,
        settings: Settings,
        brokers: Callable[[str], Broker],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        jitter: Callable[[], float] = random.random,
        policy: ExecutionPolicy | None = None,
    ) -> None:
        self.settings = settings
        self._policy = policy if policy is not None else ExecutionPolicy.from_settings(settings)
        self._make_broker = brokers
        self._brokers: dict[str, Broker] = {}
        self._assets: dict[str, AssetCache] = {}
        self._in_flight: Counter[str] = Counter()
        self._clock = clock
        self._jitter = jitter

    def broker(self, account_id: str) -> Broker:
        if account_id not in self._brokers:
            self._brokers[account_id] = self._make_broker(account_id)
        return self._brokers[account_id]

    async def close(self) -> None:
        for broker in self._brokers.values():
            await _close(broker)
        self._brokers.clear()

    @asynccontextmanager
    async def _borrowed(self, account_id: str) -> AsyncIterator[Broker]:
        self._in_flight[account_id] += 1
        try:
            yield self.broker(account_id)
        finally:
            self._in_flight[account_id] -= 1

    async def _retire_if_idle(self, account_id: str) -> None:
        """Close an account's broker once one of its workflows is done and no step is using
        it: a simulated broker holds its own connection pool, and a service that trades for
        many accounts must not keep one open per account it ever served. The next workflow of
        the account makes a new one."""
        if self._in_flight[account_id] > 0:
            return
        del self._in_flight[account_id]
        self._assets.pop(account_id, None)
        broker = self._brokers.pop(account_id, None)
        if broker is not None:
            await _close(broker)

    # ------------------------------------------------------------------ RebalancePlanned

    async def handle(
        self, event: Event, context: HandlerContext
    ) -> Sequence[Event] | HandlerOutcome:
        """Start executing a plan (docs/trading-rules.md, Execution entry / Stale orders). A
        finished workflow, a workflow already executing and a plan id already executed are skipped
        with no broker call: a workflow executes one plan (docs/trading-rules.md, Step gating)."""
        if isinstance(event, TradingHalted):
            return await self._on_halt(event, context)
        if not isinstance(event, RebalancePlanned):
            return ()
        store = context.store
        workflow_id = event.correlation_id
        history = await store.read_correlation(workflow_id, START_HISTORY)
        workflow = workflow_state([recorded.event for recorded in history])
        if workflow is not None and workflow.finished:
            log.info("workflow already finished; plan skipped", workflow_id=workflow_id)
            return ()
        plan_id = str(event.plan_id)
        if await service_state.load(store, SERVICE, workflow_id) is not None or (
            await service_state.load(store, SERVICE, plan_key(plan_id)) is not None
        ):
            log.warning(
                "second plan for the workflow ignored: a workflow executes one plan",
                plan_id=plan_id,
            )
            return ()
        now = self._clock()
        started_at = next(
            (
                recorded.event.occurred_at
                for recorded in history
                if recorded.event.event_type == "WorkflowStarted"
            ),
            event.occurred_at,
        )
        state = WorkflowExecution(
            workflow_id=workflow_id,
            account_id=event.account_id,
            plan_id=plan_id,
            plan_event_id=str(event.event_id),
            phase=WorkflowPhase.CANCELLING_STALE,
            lines=tuple(
                PlanLine(item.symbol, item.action, item.trade_amount, item.target_weight)
                for item in event.items
            ),
            started_at=started_at,
            preview=workflow is not None and workflow.dry_run,
        )
        if not event.trades_required:
            result = finish(state, now, self._policy)
        else:
            requested = {
                recorded.event.client_order_id
                for recorded in history
                if isinstance(recorded.event, OrderRequested)
            }
            result = await self._cancel_stale(state, requested, now)
        return HandlerOutcome(
            events=result.events,
            in_transaction=lambda uow: self._record_start(uow, result),
        )

    async def _on_halt(self, event: TradingHalted, context: HandlerContext) -> list[Event]:
        """Cancel this system's open orders on every account the halt names, but its own
        liquidations' (docs/trading-rules.md, Halt); one `HaltOrdersCancelled` per account."""
        keep = await halt.liquidation_orders(context.store, event)
        reports: list[Event] = []
        for account_id in event.accounts:
            async with self._borrowed(account_id) as broker:
                reports.append(
                    await halt.cancel_open_orders(broker, event, account_id, keep, context)
                )
            await self._retire_if_idle(account_id)
        return reports

    async def _cancel_stale(
        self, state: WorkflowExecution, requested: Collection[str], now: datetime
    ) -> StepResult:
        """Before the first phase, cancel this system's orders left open by earlier workflows
        (own orders whose client order id is not among the workflow's `requested`); foreign
        orders are left alone and reported. A dry run only reads them: it cancels nothing, and
        sends nothing that a close guard would have to stop."""
        async with self._borrowed(state.account_id) as broker:
            if not state.preview:
                state = replace(state, session_close=await _session_close(broker, now))
            stale, foreign = stale_and_foreign(requested, await broker.get_open_orders())
            for order in () if state.preview else stale:
                try:
                    await broker.cancel_order(order.broker_order_id)
                except BrokerError as error:
                    log.warning("stale order cancel failed", error=error.message)
        return after_stale_cancel(state, stale, foreign, now, self._policy)

    async def _record_start(self, uow: UnitOfWork, result: StepResult) -> None:
        state = result.state
        await service_state.save(uow, SERVICE, state.workflow_id, to_document(state), 0)
        await service_state.save(
            uow, SERVICE, plan_key(state.plan_id), {"workflow_id": state.workflow_id}, 0
        )
        await self._arm(uow, state.workflow_id, result.timers)

    # ------------------------------------------------------------------ timers

    async def fire(
        self, store: EventStoreReader, workflow_id: str, due: Sequence[timers.Timer]
    ) -> PeriodicOutcome:
        """Run the due timers of one workflow, in order, on its state, and return what they
        report, to be recorded in ONE transaction with their deletion (a 100-symbol phase opens
        with 100 price steps: one commit, not a hundred). Timers armed by these steps fire only
        after that commit, so an intent is always recorded before its submission. Losing a race
        with another replica on the same workflow (the state document's version) gives the
        timers back to run again."""
        stream_id = stream_of(SERVICE, workflow_id)
        stored = await service_state.load(store, SERVICE, workflow_id)
        if stored is None:
            return PeriodicOutcome(stream_id, fired=due)
        state = from_document(stored.document)
        assets = self._assets.setdefault(
            state.account_id, AssetCache(self.settings.asset_cache_s, self._clock)
        )
        refusal = await halt.refusal(store, state.account_id, workflow_id)
        with structlog.contextvars.bound_contextvars(correlation_id=workflow_id):
            async with self._borrowed(state.account_id) as broker:
                steps = ChainSteps(
                    broker,
                    self.settings,
                    clock=self._clock,
                    jitter=self._jitter,
                    assets=assets,
                    policy=self._policy,
                    halt=refusal,
                )
                result = await self._run_steps(steps, state, due)

        async def record(uow: UnitOfWork) -> None:
            if result.events or result.state != state:
                await service_state.save(
                    uow, SERVICE, workflow_id, to_document(result.state), stored.version
                )
            await self._arm(uow, workflow_id, result.timers)

        if result.state.phase is WorkflowPhase.DONE:
            await self._retire_if_idle(state.account_id)
        return PeriodicOutcome(stream_id, result.events, in_transaction=record, fired=due)

    async def _run_steps(
        self, steps: ChainSteps, state: WorkflowExecution, due: Sequence[timers.Timer]
    ) -> StepResult:
        """Reads and cancels of different chains run side by side (bounded), since they touch only
        their own chain, and so do the look-ups that precede each submission; the submissions
        themselves run one by one in plan order, so orders reach the broker in turn
        (docs/trading-rules.md, Execution state machine). The phase advances once, then the
        workflow's own timers run."""
        now = self._clock()
        chain_timers = [timer for timer in due if timer.chain != WORKFLOW_SCOPE]
        side_by_side: dict[str, timers.Timer] = {}
        in_turn: list[timers.Timer] = []
        for timer in chain_timers:
            if timer.kind == TimerKind.SUBMIT.value or timer.chain in side_by_side:
                in_turn.append(timer)
            else:
                side_by_side[timer.chain] = timer
        gate = asyncio.Semaphore(CONCURRENT_CHAIN_STEPS)

        async def step(timer: timers.Timer) -> StepResult:
            async with gate:
                return await steps.step_chain(
                    state, timer.chain, TimerKind(timer.kind), timer.payload, now
                )

        async def look_up_ahead(client_order_id: str) -> None:
            async with gate:
                await steps.look_up_ahead(client_order_id)

        intents = [
            chain.order.client_order_id
            for timer in in_turn
            if timer.kind == TimerKind.SUBMIT.value
            and (chain := state.chain(timer.chain)) is not None
            and chain.order is not None
        ]
        result = StepResult(state)
        stepped, _ = await asyncio.gather(
            asyncio.gather(*(step(timer) for timer in side_by_side.values())),
            asyncio.gather(*(look_up_ahead(client_order_id) for client_order_id in intents)),
        )
        for timer, outcome in zip(side_by_side.values(), stepped, strict=True):
            chain = outcome.state.chain(timer.chain)
            merged = result.state.with_chain(chain) if chain is not None else result.state
            result = result.then(StepResult(merged, outcome.events, outcome.timers))
        for timer in in_turn:
            result = result.then(
                await steps.step_chain(
                    result.state, timer.chain, TimerKind(timer.kind), timer.payload, now
                )
            )
        result = result.then(advance(result.state, now, self._policy))
        for timer in due:
            if timer.chain == WORKFLOW_SCOPE:
                result = result.then(
                    await steps.fire(
                        result.state, timer.chain, TimerKind(timer.kind), timer.payload
                    )
                )
        return result

    async def _arm(
        self, uow: UnitOfWork, workflow_id: str, requests: Sequence[TimerRequest]
    ) -> None:
        await timers.schedule_all(
            uow,
            service=SERVICE,
            workflow_id=workflow_id,
            armed=[
                timers.Arming(request.chain, request.kind.value, request.due_at, request.payload)
                for request in requests
            ],
        )


async def _session_close(broker: Broker, now: datetime) -> datetime | None:
    """The close of the session the run trades in, on execution's clock, for the close guard
    (docs/trading-rules.md, Close guard); None when the session is closed. The broker's clock
    says how far away the close is (early closes included), which also holds for the simulated
    broker, whose clock stands still at its own moment; if it cannot be read, the exchange
    calendar answers for `now`."""
    try:
        clock = await broker.get_clock()
    except BrokerError as error:
        log.warning(
            "the broker's clock could not be read; the exchange calendar gives the close",
            error=error.message,
        )
        session = market_clock.session_for(now)
        if session is None or not market_clock.is_open_at(now):
            return None
        return market_clock.session_close(session)
    if not clock.is_open:
        return None
    return now + (clock.next_close - clock.now)


async def _close(broker: Broker) -> None:
    """Brokers that hold resources (the simulated broker's connection pool) have `close`; the
    port itself does not require it."""
    close = getattr(broker, "close", None)
    if close is not None:
        await close()
