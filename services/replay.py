"""`alchemiser replay`: re-derive a recorded workflow's decisions from its recorded inputs —
the bars named by `bars_hash` plus the recorded live bar, the account snapshot the plan was made
from, the quotes each order was priced on — and compare them with what was recorded. With other
strategy files (shadow mode) it shows how their plan would have differed on that day.

The re-derivation calls no broker for orders. `redrive` then plays the day again under a new
workflow id on a fresh simulated account opened with the recorded account snapshot: the portfolio
and execution services plan and trade it as they did, and its plan and orders are compared too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import zip_longest
from pathlib import Path

from services.embedded import EmbeddedSystem
from services.execution import sizing
from services.execution.assets import AssetCache
from services.notify.rendering import step_text
from services.notify.report import trace_line
from services.portfolio import plan_mapping
from services.portfolio import snapshot as domain
from services.portfolio.planner import plan_rebalance
from services.registry import ServiceName
from services.strategy.account_configs import AccountConfigs
from services.strategy.signal_events import recorded_signal, strategy_signals, target_allocations
from services.strategy.signals import SignalDecision, decide, load_strategy_set
from shared.broker.factory import BrokerFactory
from shared.broker.port import Broker
from shared.broker.request_budget import BudgetShare
from shared.broker.simulated import SimulatedBroker
from shared.events import Event
from shared.events.ids import signal_fingerprint
from shared.events.orders import OrderRequested
from shared.events.plans import RebalancePlanned
from shared.events.signals import DecisionStep, SignalGenerated, StrategySignal
from shared.events.workflow import WorkflowConfiguration, WorkflowStarted
from shared.marketdata.bars import BarSnapshot
from shared.marketdata.barstore import BarStore
from shared.settings import Settings
from shared.trading import Quote, Side, flat_quote
from shared.workflow import is_finished, workflow_state


class ReplayError(Exception):
    """The recording cannot be replayed as asked; the message says what is missing."""


@dataclass(frozen=True, order=True)
class Decision:
    symbol: str
    action: str
    amount: Decimal
    """Trade dollars for a plan line, shares for an order."""


@dataclass(frozen=True)
class ReplayResult:
    workflow_id: str
    started_from: str
    targets: dict[str, Decimal]
    recorded_targets: dict[str, Decimal]
    plan: tuple[Decision, ...]
    recorded_plan: tuple[Decision, ...]
    orders: tuple[Decision, ...]
    recorded_orders: tuple[Decision, ...]
    flipped: tuple[str, ...] = ()
    """Per strategy whose decision path differs from the recording, its first differing step."""
    notes: tuple[str, ...] = ()
    """How the replay priced what the recording never priced."""

    @property
    def differences(self) -> list[str]:
        return [
            *self.flipped,
            *differences("plan", self.plan, self.recorded_plan),
            *differences("orders", self.orders, self.recorded_orders),
        ]


def differences(
    name: str, replayed: tuple[Decision, ...], recorded: tuple[Decision, ...]
) -> list[str]:
    """One line per decision only one side has."""
    return [
        f"{name}: {line.action} {line.symbol} {line.amount} "
        f"({'replay only' if line in replayed else 'recorded only'})"
        for line in sorted(set(replayed) ^ set(recorded))
    ]


def _first(events: Sequence[Event], kind: type[Event]) -> Event | None:
    return next((event for event in events if isinstance(event, kind)), None)


def replay_bars(
    settings: Settings, signal: SignalGenerated, tickers: frozenset[str]
) -> BarSnapshot:
    """The bars the recorded run decided on: the store's completed sessions before `as_of`
    plus the recorded provisional bar, or the store's sessions up to `as_of`."""
    stored = BarStore(settings.data_dir).load()
    live_closes = recorded_signal(signal).live_closes
    if live_closes:
        completed = stored.view(tickers, signal.as_of - dt.timedelta(days=1))
        live = {
            symbol: price for symbol, price in live_closes.items() if symbol in completed.symbols
        }
        return completed.with_provisional_bar(signal.as_of, live)
    return stored.view(tickers, signal.as_of)


async def replay_workflow(
    events: Sequence[Event],
    settings: Settings,
    broker: Broker,
    *,
    from_event: str | None = None,
    strategies_dir: Path | None = None,
) -> ReplayResult:
    if not events:
        raise ReplayError("no events recorded for that workflow")
    signal = _first(events, SignalGenerated)
    plan = _first(events, RebalancePlanned)
    if not isinstance(signal, SignalGenerated) or not isinstance(plan, RebalancePlanned):
        raise ReplayError(
            f"workflow {events[0].correlation_id} has no recorded signal and plan to replay "
            "(it failed before planning)"
        )
    ids = {str(event.event_id): event for event in events}
    start = ids.get(from_event or str(events[0].event_id))
    if start is None:
        raise ReplayError(f"event {from_event} is not part of workflow {events[0].correlation_id}")
    recorded_targets = plan_mapping.target_weights(signal)
    flipped: tuple[str, ...] = ()
    if strategies_dir is not None or start.event_type == "WorkflowStarted":
        decision = _replayed_decision(settings, signal, strategies_dir)
        targets = target_allocations(decision.target_weights)
        flipped = flipped_conditions(signal.strategies, strategy_signals(decision))
    else:
        targets = recorded_targets
    quotes = _Quotes.of(events, plan, settings, signal.as_of, targets)
    if start.event_type in ("WorkflowStarted", "SignalGenerated") or strategies_dir is not None:
        plan_lines = _plan_lines(plan, targets, settings, quotes)
    else:
        plan_lines = _recorded_plan(plan)
    orders = await _orders(plan, plan_lines, broker, settings, quotes)
    return ReplayResult(
        workflow_id=events[0].correlation_id,
        started_from=start.event_type,
        targets=targets,
        recorded_targets=recorded_targets,
        plan=tuple(sorted(line for line in plan_lines if line.action != "HOLD")),
        recorded_plan=tuple(sorted(d for d in _recorded_plan(plan) if d.action != "HOLD")),
        orders=tuple(sorted(orders)),
        recorded_orders=_initial_orders(events),
        flipped=flipped,
        notes=quotes.notes,
    )


SHADOW_CONFIGS = ("allocation.json", "allocation.prod.json")
"""The allocation configs shadow mode looks for in its folder, in this order: the name the docs
use, then the name of the bundled production config."""


def shadow_config(strategies_dir: Path) -> Path:
    """The allocation config of a shadow-mode folder."""
    for name in SHADOW_CONFIGS:
        if (strategies_dir / name).is_file():
            return strategies_dir / name
    found = sorted(path.name for path in strategies_dir.glob("*.json"))
    raise ReplayError(
        f"{strategies_dir}: shadow mode needs an allocation config beside the strategy files; "
        f"looked for {' and '.join(SHADOW_CONFIGS)}"
        + (f" (found {', '.join(found)}; rename the one to use)" if found else "")
    )


def flipped_conditions(
    recorded: Sequence[StrategySignal], replayed: Sequence[StrategySignal]
) -> tuple[str, ...]:
    """For each strategy in both, the first step of its decision path that differs: the
    condition that flipped (or the filter that chose otherwise), as recorded and as replayed."""
    replayed_by_name = {signal.strategy: signal for signal in replayed}
    lines: list[str] = []
    for before in recorded:
        after = replayed_by_name.get(before.strategy)
        if after is None:
            continue
        for number, (old, new) in enumerate(zip_longest(before.trace, after.trace), start=1):
            if old != new:
                lines.append(
                    f"{before.strategy}: step {number} flipped: "
                    f"recorded {_step(old)}; now {_step(new)}"
                )
                break
    return tuple(lines)


def _step(step: DecisionStep | None) -> str:
    if step is None:
        return "no such step"
    where = f" ({step.span})" if step.span else ""
    return step_text(trace_line(step)) + where


def _replayed_decision(
    settings: Settings, signal: SignalGenerated, strategies_dir: Path | None
) -> SignalDecision:
    config = (
        shadow_config(strategies_dir)
        if strategies_dir is not None
        else AccountConfigs(settings).config_of(signal.account_id)
    )
    strategy_set = load_strategy_set(config, settings.resolved_cache_dir)
    if strategies_dir is None and strategy_set.files_hash != signal.strategy_files_hash:
        raise ReplayError(
            "the strategy files changed since this workflow ran (strategy_files_hash differs); "
            "replay with --strategies DIR to compare other files"
        )
    bars = replay_bars(settings, signal, strategy_set.tickers)
    if strategies_dir is None and bars.content_hash != signal.bars_hash:
        raise ReplayError(
            f"the bar store no longer holds the bars this workflow used (bars_hash "
            f"{signal.bars_hash[:12]}…, now {bars.content_hash[:12]}…); restore them to replay"
        )
    return decide(strategy_set, bars, signal.as_of)


@dataclass(frozen=True)
class _Quotes:
    """The quote each symbol is planned and sized on: the one its recorded order was priced on,
    else the plan's snapshot quote, else — a symbol the recording never priced (shadow mode's
    new targets) — a flat quote at the bar store's close on the recorded day, with a note."""

    by_symbol: dict[str, Quote]
    from_bars: tuple[Quote, ...]
    notes: tuple[str, ...]

    @classmethod
    def of(
        cls,
        events: Sequence[Event],
        plan: RebalancePlanned,
        settings: Settings,
        as_of: dt.date,
        targets: dict[str, Decimal],
    ) -> _Quotes:
        recorded = {quote.symbol: quote for quote in plan.snapshot.quotes}
        recorded |= {
            event.symbol: event.quote
            for event in events
            if isinstance(event, OrderRequested) and event.reason == "initial" and event.quote
        }
        missing = sorted(set(targets) - set(recorded))
        bars = BarStore(settings.data_dir).load() if missing else None
        from_bars: list[Quote] = []
        notes: list[str] = []
        for symbol in missing:
            close = bars.close_on_or_before(symbol, as_of) if bars is not None else None
            if close is None:
                notes.append(f"{symbol}: no quote was recorded and the bar store has no bar")
                continue
            quote = flat_quote(symbol, close, plan.snapshot.as_of)
            from_bars.append(quote)
            notes.append(
                f"{symbol}: no quote was recorded; priced at the bar store's close on or before "
                f"{as_of.isoformat()} (${close})"
            )
        by_symbol = {**recorded, **{quote.symbol: quote for quote in from_bars}}
        return cls(by_symbol, tuple(from_bars), tuple(notes))


def _plan_lines(
    recorded: RebalancePlanned, targets: dict[str, Decimal], settings: Settings, quotes: _Quotes
) -> list[Decision]:
    """Plan from the recorded account snapshot, with the planner the portfolio service calls."""
    facts = plan_mapping.recorded_account(recorded.snapshot, quotes.from_bars)
    try:
        plan = plan_rebalance(
            facts, targets, settings.cash_reserve, min_trade_fraction=settings.min_trade_fraction
        )
    except domain.PlanningError as error:
        raise ReplayError(f"the replayed plan fails: {error}") from None
    return [Decision(i.symbol, i.action.value, i.trade_amount) for i in plan.items]


def _recorded_plan(recorded: RebalancePlanned) -> list[Decision]:
    return [Decision(i.symbol, i.action, i.trade_amount) for i in recorded.items]


async def _orders(
    recorded: RebalancePlanned,
    plan_lines: Sequence[Decision],
    broker: Broker,
    settings: Settings,
    quotes: _Quotes,
) -> list[Decision]:
    """Size each BUY/SELL line on its quote (see `_Quotes`) with execution's own sizing rules."""
    held = plan_mapping.recorded_account(recorded.snapshot).positions
    targets = {item.symbol: item.target_weight for item in recorded.items}
    assets = AssetCache(settings.asset_cache_s)
    orders: list[Decision] = []
    for line in plan_lines:
        if line.action == "HOLD":
            continue
        order_side = Side(line.action)
        quote = quotes.by_symbol.get(line.symbol)
        sized = sizing.size_order(
            side=order_side,
            trade_amount=line.amount,
            liquidation=sizing.is_liquidation(order_side, targets.get(line.symbol, Decimal(0))),
            price=quote.mid() if quote else None,
            position_qty=held.get(line.symbol),
            qty_available=held.get(line.symbol),
            asset=await assets.get(broker, line.symbol),
            min_notional_usd=settings.exec_min_notional_usd,
        )
        if sized.outcome is sizing.SizingOutcome.SIZED:
            orders.append(Decision(line.symbol, line.action, sized.qty))
    return orders


@dataclass(frozen=True)
class Redrive:
    """The recorded day played again under a new workflow on a simulated account opened with
    the recorded account snapshot."""

    workflow_id: str
    account_id: str
    status: str
    plan: tuple[Decision, ...]
    orders: tuple[Decision, ...]


async def redrive(events: Sequence[Event], result: ReplayResult, settings: Settings) -> Redrive:
    """Start a new workflow from the re-derived signal on a fresh simulated account holding the
    recorded snapshot, and let the portfolio and execution services run it to its end."""
    signal = _first(events, SignalGenerated)
    plan = _first(events, RebalancePlanned)
    recorded_start = _first(events, WorkflowStarted)
    assert isinstance(signal, SignalGenerated) and isinstance(plan, RebalancePlanned)
    assert isinstance(recorded_start, WorkflowStarted)
    workflow_id = str(uuid.uuid4())
    account_id = f"replay-{workflow_id[:8]}"
    factory = BrokerFactory(settings, share=BudgetShare.EXECUTION)
    broker = factory(account_id)
    try:
        if not isinstance(broker, SimulatedBroker):
            raise ReplayError("a replay re-drives on the simulated broker only")
        await broker.open_account(
            plan.snapshot.cash, {p.symbol: (p.qty, p.price) for p in plan.snapshot.positions}
        )
    finally:
        await factory.close()
    now = dt.datetime.now(dt.UTC)
    lineage = {"replay_of": recorded_start.correlation_id}
    start = WorkflowStarted(
        correlation_id=workflow_id,
        account_id=account_id,
        occurred_at=now,
        source="replay",
        requested_by=f"alchemiser replay of {recorded_start.correlation_id}",
        configuration=WorkflowConfiguration(live_trading=False),
        trading_date=recorded_start.trading_date,
        force=True,
        idempotency_key=f"replay:{workflow_id}",
        metadata=lineage,
    )
    replayed_signal = signal.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "correlation_id": workflow_id,
            "causation_id": str(start.event_id),
            "account_id": account_id,
            "occurred_at": now,
            "source": "replay",
            "metadata": lineage,
            "consolidated_portfolio": signal.consolidated_portfolio.model_copy(
                update={"target_allocations": result.targets, "correlation_id": workflow_id}
            ),
            "signal_fingerprint": signal_fingerprint(result.targets),
        }
    )
    system = EmbeddedSystem(
        settings, services=(ServiceName.PORTFOLIO, ServiceName.EXECUTION, ServiceName.NOTIFY)
    )
    try:
        await system.start()
        await system.store.append(f"replay/{workflow_id}", 0, [start, replayed_signal])
        system.relay.wake()
        replayed = await _until_finished(system, workflow_id, settings.workflow_deadline_s)
    finally:
        await system.stop()
    state = workflow_state(replayed)
    new_plan = _first(replayed, RebalancePlanned)
    return Redrive(
        workflow_id=workflow_id,
        account_id=account_id,
        status=state.status if state else "running",
        plan=tuple(
            sorted(d for d in _recorded_plan(new_plan) if d.action != "HOLD")
            if isinstance(new_plan, RebalancePlanned)
            else ()
        ),
        orders=_initial_orders(replayed),
    )


async def _until_finished(
    system: EmbeddedSystem, workflow_id: str, deadline_s: float
) -> list[Event]:
    give_up = time.monotonic() + deadline_s
    while True:
        system.check_alive(workflow_id)
        events = [item.event for item in await system.store.read_correlation(workflow_id)]
        if is_finished(events) or time.monotonic() > give_up:
            return events
        await asyncio.sleep(0.1)


def _initial_orders(events: Sequence[Event]) -> tuple[Decision, ...]:
    return tuple(
        sorted(
            Decision(event.symbol, event.side, event.qty)
            for event in events
            if isinstance(event, OrderRequested) and event.reason == "initial"
        )
    )
