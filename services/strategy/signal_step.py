"""The strategy step of a workflow: `WorkflowStarted` in, `SignalGenerated` (or
`WorkflowFailed(signal_generation)`) out, copied from the one evaluation of the account's
strategy set on the current market snapshot (`services.strategy.shared_signal`).

Everything a replay needs to reproduce the decision travels in the event: the as-of date, the
hash of the bars used, the provisional bar's prices and the hash of the strategy files.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import structlog
from prometheus_client import Counter

from services.strategy.account_configs import AccountConfigs
from services.strategy.live_bar import LivePriceError, live_prices
from services.strategy.shared_signal import (
    SingleFlight,
    SnapshotKey,
    strategy_set_hash,
    trading_window,
    workflow_signal,
)
from services.strategy.signal_events import (
    consolidated_portfolio,
    strategy_signals,
    target_allocations,
)
from services.strategy.signals import (
    SignalGenerationError,
    StrategySet,
    decide,
    load_strategy_set,
    stale_symbols,
)
from services.strategy.symphonies import bundled_config
from shared import market_clock
from shared.broker.port import Broker
from shared.events import Event
from shared.events.ids import signal_fingerprint
from shared.events.signals import SignalComputed, signal_content_hash
from shared.events.workflow import WorkflowStarted
from shared.marketdata.bars import BarDataError
from shared.marketdata.barstore import BarStore, BarStoreMarketData
from shared.marketdata.port import MarketData
from shared.marketdata.sample import ensure_sample
from shared.messaging.consumer import HandlerContext, HandlerOutcome, StreamClaim
from shared.settings import Settings
from shared.workflow import SIGNAL_GENERATION, STEPS, workflow_state

log = structlog.get_logger(__name__)

BrokerFor = Callable[[str], Awaitable[Broker]]


SAMPLE_BASELINE_SYMBOL = "SPY"
"""Always in the synthetic sample, whatever the strategy files name: the broad-market reference."""


def bundled_symbols(cache_dir: Path | None) -> frozenset[str]:
    """Every ticker of every bundled strategy file (the configured ones or not), plus SPY: what
    the synthetic sample holds, so any bundled file runs on a fresh installation."""
    from services.strategy.parse_cache import load_symphony

    files = sorted(bundled_config().parent.glob("*.clj"))
    return frozenset({SAMPLE_BASELINE_SYMBOL}).union(
        *(load_symphony(path, cache_dir).tickers for path in files)
    )


@dataclass(frozen=True)
class MarketMoment:
    now: dt.datetime
    session_open: bool
    today: dt.date | None
    last_completed: dt.date

    @property
    def as_of(self) -> dt.date:
        """Today in the session (decided on a provisional bar), else the last closed session."""
        return self.today if self.session_open and self.today is not None else self.last_completed


def market_moment(now: dt.datetime) -> MarketMoment:
    """Whether the session is open at `now`, and the last session that has closed by then."""
    return MarketMoment(
        now=now,
        session_open=market_clock.is_open_at(now),
        today=market_clock.session_for(now),
        last_completed=market_clock.last_completed_session(now),
    )


class SignalStep:
    """Holds what is worth keeping between workflows: the parsed strategy sets and the
    evaluations in flight."""

    def __init__(self, settings: Settings, broker_for: BrokerFor) -> None:
        self._settings = settings
        self._broker_for = broker_for
        self._bar_store = BarStore(settings.data_dir)
        self._market_data: MarketData = BarStoreMarketData(self._bar_store)
        self._accounts = AccountConfigs(settings)
        self._strategy_sets: dict[Path, StrategySet] = {}
        self._evaluations = SingleFlight()
        self.evaluated = Counter(
            "alchemiser_signal_evaluations_total",
            "Strategy-set evaluations this process ran (one per shared signal it decided)",
            registry=None,
        )

    async def handle(self, event: Event, context: HandlerContext) -> HandlerOutcome:
        if not isinstance(event, WorkflowStarted):
            return HandlerOutcome()
        history = [
            recorded.event
            for recorded in await context.store.read_correlation(event.correlation_id)
        ]
        state = workflow_state(history)
        if state is not None and state.finished:
            log.info("workflow already finished; start skipped", status=state.status)
            return HandlerOutcome()
        if state is not None and SIGNAL_GENERATION not in STEPS[state.kind]:
            return HandlerOutcome()
        try:
            return await self._signal(event, context)
        except (SignalGenerationError, BarDataError, LivePriceError) as error:
            log.warning("signal generation failed", reason=str(error))
            return HandlerOutcome([context.failure(event, "signal_generation", str(error))])

    async def _signal(self, event: WorkflowStarted, context: HandlerContext) -> HandlerOutcome:
        """The recorded shared signal of the workflow's snapshot, else one evaluation of it,
        claimed for its stream with the workflow's copy."""
        moment, store_hash = await asyncio.to_thread(self._market_moment)
        strategy_set = await asyncio.to_thread(self._strategies, event.account_id)
        key = SnapshotKey(
            strategy_set_hash=strategy_set_hash(strategy_set),
            as_of=moment.as_of,
            window=trading_window(moment.now, moment.session_open, self._settings.signal_window_s),
            bar_store_hash=store_hash,
        )
        recorded = await context.store.read_stream(key.stream_id)
        if recorded and isinstance(shared := recorded[0].event, SignalComputed):
            return HandlerOutcome([workflow_signal(shared, event, context)])
        shared = await self._evaluations.run(
            key.stream_id, lambda: self._evaluate(event, context, key, moment, strategy_set)
        )
        return HandlerOutcome(
            [workflow_signal(shared, event, context)],
            claims=[StreamClaim(key.stream_id, shared)],
        )

    async def _evaluate(
        self,
        cause: WorkflowStarted,
        context: HandlerContext,
        key: SnapshotKey,
        moment: MarketMoment,
        strategy_set: StrategySet,
    ) -> SignalComputed:
        """Decide on the snapshot: the completed bars, and in the session the live prices the
        workflow's broker quotes now as today's provisional bar."""
        tickers = strategy_set.tickers
        completed = await self._market_data.daily_bars(tickers, moment.last_completed)
        stale = stale_symbols(completed, tickers, moment.last_completed)
        if stale:
            raise SignalGenerationError(
                f"bars are older than the last completed session {moment.last_completed}: "
                f"{', '.join(stale)}; refresh them (`alchemiser data fetch`) before trading"
            )
        bars, live = completed, dict[str, Decimal]()
        if moment.session_open and moment.today is not None:
            broker = await self._broker_for(cause.account_id)
            live = await live_prices(broker, tickers)
            bars = completed.with_provisional_bar(
                moment.today, {symbol: float(price) for symbol, price in live.items()}
            )
        decision = await asyncio.to_thread(decide, strategy_set, bars, moment.as_of)
        self.evaluated.inc()
        synthetic = await asyncio.to_thread(lambda: self._bar_store.manifest().synthetic)
        signal_id = uuid.uuid4()
        now = dt.datetime.now(dt.UTC)
        draft = SignalComputed(
            event_id=signal_id,
            correlation_id=str(signal_id),
            causation_id=str(cause.event_id),
            account_id=cause.account_id,
            occurred_at=now,
            source=context.service,
            strategies=strategy_signals(decision),
            consolidated_portfolio=consolidated_portfolio(decision, str(signal_id), now),
            as_of=decision.as_of,
            bars_hash=bars.content_hash,
            synthetic_bars=synthetic,
            live_bars=live,
            strategy_files_hash=strategy_set.files_hash,
            signal_fingerprint=signal_fingerprint(target_allocations(decision.target_weights)),
            strategy_set_hash=key.strategy_set_hash,
            window=key.window,
            bar_store_hash=key.bar_store_hash,
            content_hash="pending",
        )
        return draft.model_copy(update={"content_hash": signal_content_hash(draft)})

    def _market_moment(self) -> tuple[MarketMoment, str]:
        """'Now' by the configured clock and the bar store's content hash; a fresh installation
        gets the synthetic sample first."""
        if not self._bar_store.exists():
            symbols = bundled_symbols(self._settings.resolved_cache_dir)
            ensure_sample(self._settings.data_dir, symbols, dt.datetime.now(dt.UTC))
        now = market_clock.market_now(self._settings, self._bar_store.last_session())
        return market_moment(now), self._bar_store.manifest().content_hash

    def _strategies(self, account_id: str) -> StrategySet:
        config = self._accounts.config_of(account_id)
        strategy_set = self._strategy_sets.get(config)
        if strategy_set is None:
            strategy_set = load_strategy_set(config, self._settings.resolved_cache_dir)
            self._strategy_sets[config] = strategy_set
        return strategy_set
