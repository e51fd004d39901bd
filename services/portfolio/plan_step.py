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

from services.portfolio import liquidation
from services.portfolio import snapshot as domain
from services.portfolio.planner import RebalancePlan, plan_rebalance
from shared.broker.errors import BrokerError
from shared.broker.models import Order, Position, Quote
from shared.broker.port import Broker
from shared.events import Event
from shared.events.ids import CLIENT_ORDER_ID_PREFIX, plan_id
from shared.events.market import AccountSnapshot, OpenOrder, PositionSnapshot
from shared.events.market import Quote as QuoteFact
from shared.events.plans import (
    AllocationComparison,
    PlanItem,
    PlanMetadata,
    RebalancePlanned,
)
from shared.events.plans import RebalancePlan as PlanDocument
from shared.events.signals import SignalGenerated
from shared.events.workflow import WorkflowFailed
from shared.eventstore import timers
from shared.eventstore.port import EventStoreReader
from shared.messaging.consumer import HandlerContext, HandlerOutcome, stream_of
from shared.service.runtime import PeriodicOutcome
from shared.settings import Settings

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
        if not isinstance(event, SignalGenerated):
            return ()
        if await self._settled(event.correlation_id, context):
            return ()
        try:
            broker = await self._broker_for(event.account_id)
            cash = (await broker.get_account()).cash
            if cash <= 0 and self._settings.liquidate_on_non_positive_cash:
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
        if isinstance(signal, SignalGenerated) and not await self._settled(
            timer.workflow_id, context
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

    async def _settled(self, workflow_id: str, context: HandlerContext) -> bool:
        """Finished or already planned: nothing more to plan for this workflow."""
        history = await context.store.read_correlation(workflow_id)
        types = {recorded.event.event_type for recorded in history}
        if types & {"WorkflowCompleted", "WorkflowFailed", "RebalancePlanned"}:
            log.info("workflow already planned or finished; signal ignored")
            return True
        return False

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

    async def _plan(
        self, signal: SignalGenerated, context: HandlerContext, broker: Broker
    ) -> RebalancePlanned:
        account = await broker.get_account()
        positions = await broker.get_positions()
        open_orders = await broker.get_open_orders()
        cash = (await broker.get_account()).cash  # read again, as §2.2 step 4 says
        targets = signal.consolidated_portfolio.target_allocations
        held = {position.symbol: position for position in positions}
        quotes = await _quotes(broker, sorted(set(targets) | set(held)))
        facts = domain.AccountSnapshot(
            cash=cash,
            portfolio_value=account.portfolio_value,
            positions={symbol: position.qty for symbol, position in held.items()},
            quotes={
                symbol: domain.PlanningQuote(bid=quote.bid, ask=quote.ask)
                for symbol, quote in quotes.items()
                if quote is not None
            },
        )
        plan = plan_rebalance(facts, targets, self._settings.cash_reserve)
        now = dt.datetime.now(dt.UTC)
        return context.follow_up(
            signal,
            RebalancePlanned,
            rebalance_plan=_plan_document(signal, plan, len(held), now),
            allocation_comparison=_comparison(plan),
            trades_required=plan.trades_required,
            snapshot=AccountSnapshot(
                cash=cash,
                portfolio_value=account.portfolio_value,
                buying_power=account.buying_power,
                positions=tuple(_position_fact(p, plan) for p in positions),
                quotes=tuple(_quote_fact(q) for q in quotes.values() if q is not None),
                as_of=now,
            ),
            open_orders=tuple(_open_order_fact(order) for order in open_orders),
            signal_fingerprint=signal.signal_fingerprint,
        )


def _failure(cause: SignalGenerated, context: HandlerContext, reason: str) -> WorkflowFailed:
    log.warning("planning failed", reason=reason)
    return context.failure(cause, "portfolio_analysis", reason)


async def _quotes(broker: Broker, symbols: list[str]) -> dict[str, Quote | None]:
    gate = asyncio.Semaphore(MAX_CONCURRENT_QUOTES)

    async def one(symbol: str) -> tuple[str, Quote | None]:
        async with gate:
            return symbol, await broker.get_latest_quote(symbol)

    return dict(await asyncio.gather(*(one(symbol) for symbol in symbols)))


def _plan_document(
    signal: SignalGenerated, plan: RebalancePlan, position_count: int, now: dt.datetime
) -> PlanDocument:
    return PlanDocument(
        correlation_id=signal.correlation_id,
        causation_id=str(signal.event_id),
        timestamp=now,
        plan_id=plan_id(signal.correlation_id),
        items=tuple(
            PlanItem(
                symbol=item.symbol,
                current_weight=item.current_weight,
                target_weight=item.target_weight,
                weight_diff=item.weight_diff,
                target_value=item.target_value,
                current_value=item.current_value,
                trade_amount=item.trade_amount,
                action=item.action.value,
                priority=item.priority,
            )
            for item in plan.items
        ),
        total_portfolio_value=plan.total_portfolio_value,
        total_trade_value=plan.total_trade_value,
        metadata=PlanMetadata(
            portfolio_value=plan.total_portfolio_value,
            cash_balance=plan.cash_balance,
            position_count=position_count,
            min_trade_threshold=plan.min_trade_threshold,
            strategy_name="+".join(signal.consolidated_portfolio.source_strategies),
        ),
    )


def _comparison(plan: RebalancePlan) -> AllocationComparison:
    """Targets, currents and deltas, all as fractions of the portfolio value."""
    value = plan.total_portfolio_value
    if value <= 0:
        return AllocationComparison(target_values={}, current_values={}, deltas={})
    return AllocationComparison(
        target_values={item.symbol: item.target_value / value for item in plan.items},
        current_values={item.symbol: item.current_value / value for item in plan.items},
        deltas={
            item.symbol: (item.target_value - item.current_value) / value for item in plan.items
        },
    )


def _position_fact(position: Position, plan: RebalancePlan) -> PositionSnapshot:
    prices = {item.symbol: item.price for item in plan.items}
    return PositionSnapshot(
        symbol=position.symbol,
        qty=position.qty,
        price=prices.get(position.symbol, position.current_price or Decimal(0)),
        market_value=position.market_value,
    )


def _quote_fact(quote: Quote) -> QuoteFact:
    return QuoteFact(
        symbol=quote.symbol,
        bid=quote.bid,
        ask=quote.ask,
        bid_size=quote.bid_size,
        ask_size=quote.ask_size,
        as_of=quote.timestamp,
        source="rest",
    )


def _open_order_fact(order: Order) -> OpenOrder:
    return OpenOrder(
        broker_order_id=order.order_id,
        client_order_id=order.client_order_id or None,
        symbol=order.symbol,
        side=order.side.value.upper(),
        qty=order.qty,
        filled_qty=order.filled_qty,
        status=order.broker_status,
        own=order.client_order_id.startswith(CLIENT_ORDER_ID_PREFIX),
    )
