"""The strategy step of a workflow: `WorkflowStarted` in, `SignalGenerated` (or
`WorkflowFailed(signal_generation)`) out.

Everything a replay needs to reproduce the decision travels in the event: the as-of date, the
hash of the bars used, the provisional bar's prices and the hash of the strategy files.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import structlog

from services.strategy.live_bar import LivePriceError, live_prices
from services.strategy.signal_events import consolidated_portfolio, strategy_signals
from services.strategy.signals import (
    SignalDecision,
    SignalGenerationError,
    StrategySet,
    decide,
    load_strategy_set,
    stale_symbols,
)
from services.strategy.symphonies import bundled_config, configured_strategy_config
from shared import market_clock
from shared.broker.port import Broker
from shared.events import Event
from shared.events.ids import signal_fingerprint
from shared.events.signals import SignalGenerated
from shared.events.workflow import WorkflowStarted
from shared.marketdata.bars import BarDataError, BarSnapshot
from shared.marketdata.barstore import BarStore, BarStoreMarketData
from shared.marketdata.port import MarketData
from shared.marketdata.sample import ensure_sample
from shared.messaging.consumer import HandlerContext
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


def market_moment(now: dt.datetime) -> MarketMoment:
    """Whether the session is open at `now`, and the last session that has closed by then."""
    return MarketMoment(
        now=now,
        session_open=market_clock.is_open_at(now),
        today=market_clock.session_for(now),
        last_completed=market_clock.last_completed_session(now),
    )


class SignalStep:
    """Holds what is worth keeping between workflows: the parsed strategy set."""

    def __init__(self, settings: Settings, broker_for: BrokerFor) -> None:
        self._settings = settings
        self._broker_for = broker_for
        self._bar_store = BarStore(settings.data_dir)
        self._market_data: MarketData = BarStoreMarketData(self._bar_store)
        self._strategy_set: StrategySet | None = None

    async def handle(self, event: Event, context: HandlerContext) -> Sequence[Event]:
        if not isinstance(event, WorkflowStarted):
            return ()
        history = [
            recorded.event
            for recorded in await context.store.read_correlation(event.correlation_id)
        ]
        state = workflow_state(history)
        if state is not None and state.finished:
            log.info("workflow already finished; start skipped", status=state.status)
            return ()
        if state is not None and SIGNAL_GENERATION not in STEPS[state.kind]:
            return ()
        try:
            return [await self._signal(event, context)]
        except (SignalGenerationError, BarDataError, LivePriceError) as error:
            log.warning("signal generation failed", reason=str(error))
            return [context.failure(event, "signal_generation", str(error))]

    async def _signal(self, event: WorkflowStarted, context: HandlerContext) -> SignalGenerated:
        moment = await asyncio.to_thread(self._market_moment)
        strategy_set = await asyncio.to_thread(self._strategies)
        tickers = strategy_set.tickers
        completed = await self._market_data.daily_bars(tickers, moment.last_completed)
        stale = stale_symbols(completed, tickers, moment.last_completed)
        if stale:
            raise SignalGenerationError(
                f"bars are older than the last completed session {moment.last_completed}: "
                f"{', '.join(stale)}; refresh them (`alchemiser data fetch`) before trading"
            )
        bars, as_of, live = completed, moment.last_completed, {}
        if moment.session_open and moment.today is not None:
            broker = await self._broker_for(event.account_id)
            live = await live_prices(broker, tickers)
            bars = completed.with_provisional_bar(
                moment.today, {symbol: float(price) for symbol, price in live.items()}
            )
            as_of = moment.today
        decision = await asyncio.to_thread(decide, strategy_set, bars, as_of)
        synthetic = await asyncio.to_thread(lambda: self._bar_store.manifest().synthetic)
        return self._event(event, context, decision, bars, live, strategy_set, synthetic)

    def _market_moment(self) -> MarketMoment:
        """'Now' by the configured clock; a fresh installation gets the synthetic sample first."""
        if not self._bar_store.exists():
            symbols = bundled_symbols(self._settings.resolved_cache_dir)
            ensure_sample(self._settings.data_dir, symbols, dt.datetime.now(dt.UTC))
        now = market_clock.market_now(self._settings, self._bar_store.last_session())
        return market_moment(now)

    def _strategies(self) -> StrategySet:
        if self._strategy_set is None:
            self._strategy_set = load_strategy_set(
                configured_strategy_config(self._settings), self._settings.resolved_cache_dir
            )
        return self._strategy_set

    def _event(
        self,
        cause: WorkflowStarted,
        context: HandlerContext,
        decision: SignalDecision,
        bars: BarSnapshot,
        live: dict[str, Decimal],
        strategy_set: StrategySet,
        synthetic: bool,
    ) -> SignalGenerated:
        portfolio = consolidated_portfolio(decision, cause.correlation_id, dt.datetime.now(dt.UTC))
        return context.follow_up(
            cause,
            SignalGenerated,
            strategies=strategy_signals(decision),
            consolidated_portfolio=portfolio,
            as_of=decision.as_of,
            bars_hash=bars.content_hash,
            synthetic_bars=synthetic,
            live_bars=live,
            strategy_files_hash=strategy_set.files_hash,
            signal_fingerprint=signal_fingerprint(portfolio.target_allocations),
        )
