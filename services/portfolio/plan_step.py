"""The portfolio step of a workflow: `SignalGenerated` in, the account read from the broker,
`RebalancePlanned` (or `WorkflowFailed(portfolio_analysis)`) out.

The plan records the account snapshot it was made from — cash, value, positions and the quotes
used — so a replay plans from exactly what the live run saw.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal

import structlog

from services.portfolio import liquidation, plan_mapping
from services.portfolio import snapshot as domain
from services.portfolio.planner import plan_liquidation, plan_rebalance
from shared.broker.errors import BrokerError
from shared.broker.port import Broker
from shared.events import Event, signal_fingerprint
from shared.events.market import AccountSnapshot
from shared.events.plans import RebalancePlanned
from shared.events.signals import SignalGenerated
from shared.events.workflow import WorkflowFailed, WorkflowStarted
from shared.eventstore import timers
from shared.eventstore.port import EventStoreReader
from shared.messaging.consumer import HandlerContext, HandlerOutcome, stream_of
from shared.service.runtime import PeriodicOutcome
from shared.settings import Settings
from shared.trading import Quote
from shared.workflow import WorkflowKind, WorkflowState, workflow_state

log = structlog.get_logger(__name__)

BrokerFor = Callable[[str], Awaitable[Broker]]
MAX_CONCURRENT_QUOTES = 16


class PlanStep:
    def __init__(self, settings: Settings, broker_for: BrokerFor) -> None:
        self._settings = settings
        self._broker_for = broker_for

    async def handle(
        self, event: Event, context: HandlerContext
    ) -> Sequence[Event] | HandlerOutcome:
        if isinstance(event, WorkflowStarted):
            return await self._plan_liquidation(event, context)
        if not isinstance(event, SignalGenerated):
            return ()
        workflow = await _state(event.correlation_id, context)
        if _settled(workflow):
            return ()
        try:
            broker = await self._broker_for(event.account_id)
            cash = (await broker.get_account()).cash
            # A dry run closes nothing: it plans from the account as it is, which the planner
            # refuses with the reason (docs/trading-rules.md, Dry runs)
            dry_run = workflow is not None and workflow.dry_run
            if cash <= 0 and self._settings.liquidate_on_non_positive_cash and not dry_run:
                return await self._liquidate(event, broker, cash)
            return [await self._plan(event, context, broker)]
        except (domain.PlanningError, BrokerError) as error:
            return [_failure(event, context, str(error))]

    async def check_liquidation(
        self, timer: timers.Timer, store: EventStoreReader
    ) -> PeriodicOutcome:
        """One account check after a close-all: plan once cash is positive, fail at the
        deadline, else check again in 2 s; the outcome commits with the timer's removal."""
        context = HandlerContext(service=liquidation.SERVICE, store=store)
        payload = timer.payload
        history = [r.event for r in await store.read_correlation(timer.workflow_id)]
        signal = next((e for e in history if str(e.event_id) == payload["signal_event_id"]), None)
        emitted: list[Event] = []
        next_check = None
        if isinstance(signal, SignalGenerated) and not _settled(
            await _state(timer.workflow_id, context)
        ):
            try:
                broker = await self._broker_for(signal.account_id)
                cash = (await broker.get_account()).cash
                if cash > 0:
                    emitted.append(await self._plan(signal, context, broker))
                elif dt.datetime.now(dt.UTC) >= dt.datetime.fromisoformat(payload["deadline"]):
                    emitted.append(
                        _failure(signal, context, f"cash is ${cash:,.2f} after liquidation")
                    )
                else:
                    next_check = liquidation.arm_check(
                        timer.workflow_id,
                        payload["signal_event_id"],
                        dt.datetime.fromisoformat(payload["deadline"]),
                        Decimal(payload["cash_before"]),
                    )
            except (domain.PlanningError, BrokerError) as error:
                emitted.append(_failure(signal, context, str(error)))
        return PeriodicOutcome(
            stream_of(liquidation.SERVICE, timer.workflow_id),
            emitted,
            in_transaction=next_check,
            fired=(timer,),
        )

    async def _liquidate(
        self, signal: SignalGenerated, broker: Broker, cash: Decimal
    ) -> HandlerOutcome:
        """Close everything (one broker call) and arm the first account check."""
        closes = await broker.close_all_positions()
        refused = [f"{c.symbol}: {c.error}" for c in closes if c.error]
        if not closes or refused:
            reason = "; ".join(refused) if refused else "nothing was held to close"
            raise domain.PlanningError(f"cash is ${cash:,.2f} and liquidation failed: {reason}")
        log.warning("non-positive cash: all positions closed", cash=str(cash), count=len(closes))
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self._settings.liquidation_wait_s)
        return HandlerOutcome(
            in_transaction=liquidation.arm_check(
                signal.correlation_id, str(signal.event_id), deadline, cash
            )
        )

    async def _plan_liquidation(
        self, started: WorkflowStarted, context: HandlerContext
    ) -> Sequence[Event]:
        """A halt's liquidation: the whole account to cash, through the same plan and execution
        as a daily run (docs/trading-rules.md, Halt). A daily run's start is the strategy's."""
        if started.workflow_type != WorkflowKind.LIQUIDATION.value:
            return ()
        if _settled(await _state(started.correlation_id, context)):
            return ()
        try:
            broker = await self._broker_for(started.account_id)
            return [await self._plan(started, context, broker)]
        except (domain.PlanningError, BrokerError) as error:
            return [_failure(started, context, str(error))]

    async def _plan(
        self, cause: SignalGenerated | WorkflowStarted, context: HandlerContext, broker: Broker
    ) -> RebalancePlanned:
        """The plan toward the signal's target, or, from a liquidation's start, toward all
        cash."""
        account = await broker.get_account()
        positions = await broker.get_positions()
        open_orders = await broker.get_open_orders()
        # Cash is read again after the positions and open orders so the plan uses the latest
        # cash (docs/trading-rules.md, Account reading).
        cash = (await broker.get_account()).cash
        targets = plan_mapping.target_weights(cause) if isinstance(cause, SignalGenerated) else {}
        held = {position.symbol: position for position in positions}
        quotes = await _quotes(broker, sorted(set(targets) | set(held)))
        priced = [quote for quote in quotes.values() if quote is not None]
        facts = plan_mapping.planning_account(
            cash,
            account.portfolio_value,
            {symbol: position.qty for symbol, position in held.items()},
            priced,
        )
        if isinstance(cause, SignalGenerated):
            plan = plan_rebalance(
                facts,
                targets,
                self._settings.cash_reserve,
                min_trade_fraction=self._settings.min_trade_fraction,
            )
            strategy_name = "+".join(cause.consolidated_portfolio.source_strategies)
            fingerprint = cause.signal_fingerprint
        else:
            plan = plan_liquidation(facts)
            strategy_name, fingerprint = WorkflowKind.LIQUIDATION.value, signal_fingerprint({})
        now = dt.datetime.now(dt.UTC)
        return context.follow_up(
            cause,
            RebalancePlanned,
            rebalance_plan=plan_mapping.plan_document(cause, strategy_name, plan, len(held), now),
            allocation_comparison=plan_mapping.allocation_comparison(plan),
            trades_required=plan.trades_required,
            snapshot=AccountSnapshot(
                cash=cash,
                portfolio_value=account.portfolio_value,
                buying_power=account.buying_power,
                positions=tuple(plan_mapping.position_fact(p, plan) for p in positions),
                quotes=tuple(priced),
                as_of=now,
            ),
            open_orders=tuple(plan_mapping.open_order_fact(order) for order in open_orders),
            signal_fingerprint=fingerprint,
        )


def _failure(
    cause: SignalGenerated | WorkflowStarted, context: HandlerContext, reason: str
) -> WorkflowFailed:
    log.warning("planning failed", reason=reason)
    return context.failure(cause, "portfolio_analysis", reason)


async def _quotes(broker: Broker, symbols: list[str]) -> dict[str, Quote | None]:
    gate = asyncio.Semaphore(MAX_CONCURRENT_QUOTES)

    async def one(symbol: str) -> tuple[str, Quote | None]:
        async with gate:
            return symbol, await broker.get_latest_quote(symbol)

    return dict(await asyncio.gather(*(one(symbol) for symbol in symbols)))


async def _state(workflow_id: str, context: HandlerContext) -> WorkflowState | None:
    history = await context.store.read_correlation(workflow_id)
    return workflow_state([recorded.event for recorded in history])


def _settled(state: WorkflowState | None) -> bool:
    """Finished or already planned: nothing more to plan for this workflow."""
    if state is not None and state.is_past("portfolio_analysis"):
        log.info("workflow already planned or finished; signal ignored")
        return True
    return False
