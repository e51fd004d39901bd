"""A backtest from its inputs to its result: the date-axis engine decides every session, the
session loop trades the decisions under the live rules, and the statistics are computed on the
curves.

Besides the run itself the result holds what makes it honest: the same run with the other timing
(how much the result depends on trading at the close the decision was made on), without costs
(what slippage and fees cost), each strategy file on its own, buy-and-hold benchmarks, and, for
every rebalance, the decision path that chose its targets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from importlib import metadata
from typing import Any

from pydantic import JsonValue

from services.backtest import metrics
from services.backtest.errors import BacktestError
from services.backtest.inputs import Strategies
from services.backtest.metrics import Curve, Metric
from services.backtest.result import (
    Allocation,
    BacktestResult,
    Costs,
    DecisionPaths,
    EquityPoint,
    Parameters,
    Rebalance,
    Run,
    Timing,
    TimingOutcome,
)
from services.backtest.simulation import SimulatedRun, TradingRules, simulate
from services.backtest.timeline import Timeline, build_timeline
from services.strategy.signal_events import decision_step_fields, target_allocations
from services.strategy.signals import DatedDecision, StrategyDecision
from shared.marketdata.bar_source import BarSource
from shared.trading import Quote, flat_quote

DEFAULT_BENCHMARK = "SPY"
SYNTHETIC_WARNING = "synthetic bars: the generated sample, not market history"

Progress = Callable[[int, int], None]
"""Called with (sessions simulated, sessions to simulate) as the runs advance."""


@dataclass(frozen=True)
class BacktestRequest:
    strategies: Strategies
    market: BarSource
    start: date | None
    end: date | None
    capital: Decimal
    rules: TradingRules
    timing: Timing
    benchmarks: tuple[str, ...] | None
    """None: SPY when the bars hold it."""
    risk_free: float


@dataclass(frozen=True)
class Portfolio:
    """The consolidated run and its statistics."""

    run: SimulatedRun
    curve: Curve
    metrics: dict[str, Metric]
    without_costs: Curve


class Backtest:
    """One backtest: the timeline is decided once, then each run simulates over it."""

    def __init__(self, request: BacktestRequest, progress: Progress | None = None) -> None:
        self.request = request
        self.timeline: Timeline = build_timeline(
            request.strategies,
            request.market.bars,
            start=request.start,
            end=request.end,
            timing=request.timing,
        )
        self._benchmarks = self._benchmark_symbols()
        self._quotes: dict[int, dict[str, Quote]] = {}
        self._targets: dict[int, dict[str, Decimal]] = {}
        """The consolidated targets by decision, as both timings' runs trade them: a decision is
        traded at its own session's close and at the next session's previous close."""
        self._progress = progress
        self._done = 0
        self._total = 0

    def portfolio(self) -> Portfolio:
        """The consolidated run, and the same run without costs for the cost drag."""
        timing = self.request.timing
        rules = self.request.rules
        self._plan(2 if rules.charges_costs else 1, self.timeline.start)
        targets = self._consolidated(timing, self.timeline.start)
        run = self._simulate(targets, rules, allocations=True)
        curve = _curve(run)
        without_costs = curve
        if rules.charges_costs:
            without_costs = _curve(self._simulate(targets, rules.without_costs()))
        statistics = metrics.portfolio_metrics(
            curve,
            invested=run.invested,
            traded=run.traded,
            orders=run.order_counts,
            without_costs=without_costs,
            risk_free_rate=self.request.risk_free,
        )
        return Portfolio(run, curve, statistics, without_costs)

    def result(self) -> BacktestResult:
        """Everything the JSON output and the report show."""
        request = self.request
        files = list(request.strategies.symphonies)
        other: Timing = "previous-close" if request.timing == "close" else "close"
        other_start = max(self.timeline.start, self.timeline.earliest_start(other))
        self._plan(len(files), self.timeline.start)
        self._plan(1, other_start)
        portfolio = self.portfolio()
        other_run = self._simulate(self._consolidated(other, other_start), request.rules)
        strategies = {name: self._file_run(name) for name in files}
        return BacktestResult(
            parameters=self._parameters(),
            metrics=portfolio.metrics,
            equity=_points(portfolio.run),
            benchmarks={
                symbol: self._benchmark(symbol, portfolio.curve) for symbol in self._benchmarks
            },
            strategies=strategies,
            rebalances=self._rebalances(portfolio.run),
            costs=Costs(portfolio.run.slippage, portfolio.run.fees),
            timing_sensitivity={
                request.timing: _timing_outcome(portfolio.curve),
                other: _timing_outcome(_curve(other_run)),
            },
            data_warnings=self._warnings(portfolio.run),
            allocations=tuple(
                Allocation(day, weights)
                for day, weights in zip(portfolio.run.dates, portfolio.run.allocations, strict=True)
            ),
        )

    # ------------------------------------------------------------------ runs

    def _plan(self, runs: int, start: int) -> None:
        self._total += runs * (self.timeline.end - start + 1)

    def _advance(self) -> None:
        self._done += 1
        if self._progress is not None:
            self._progress(self._done, self._total)

    def _simulate(
        self,
        targets: tuple[Sequence[int], Sequence[Mapping[str, Decimal]]],
        rules: TradingRules,
        *,
        allocations: bool = False,
    ) -> SimulatedRun:
        sessions, weights = targets
        return simulate(
            [self.timeline.dates[index] for index in sessions],
            sessions,
            weights,
            self._session_quotes,
            rules,
            self.request.capital,
            on_session=self._advance,
            allocations=allocations,
        )

    def _consolidated(
        self, timing: Timing, start: int
    ) -> tuple[Sequence[int], Sequence[Mapping[str, Decimal]]]:
        sessions = range(start, self.timeline.end + 1)
        targets = []
        for index in sessions:
            decision = self.timeline.decision_index(index, timing)
            converted = self._targets.get(decision)
            if converted is None:
                weights = self.timeline.decisions[decision].target_weights
                assert weights is not None, "every session from the earliest start decides"
                converted = self._targets[decision] = target_allocations(weights)
            targets.append(converted)
        return sessions, targets

    def _file_run(self, name: str) -> Run:
        sessions = range(self.timeline.start, self.timeline.end + 1)
        targets = []
        for index in sessions:
            outcome = self._decision(index, self.request.timing).strategies[name]
            assert isinstance(outcome, StrategyDecision), "every file decides from the start"
            targets.append(target_allocations(outcome.allocation))
        run = self._simulate((sessions, targets), self.request.rules)
        curve = _curve(run)
        return Run(
            metrics.curve_metrics(curve, self.request.risk_free)
            | {
                "time_in_market": metrics.time_in_market(curve, run.invested),
                "turnover": metrics.turnover(curve, run.traded),
                "rebalance_count": metrics.rebalance_count(run.order_counts),
            },
            _points(run),
        )

    def _decision(self, session: int, timing: Timing) -> DatedDecision:
        return self.timeline.decisions[self.timeline.decision_index(session, timing)]

    def _session_quotes(self, session: int, symbols: Collection[str]) -> dict[str, Quote]:
        """The session's closes as the `close` fill model quotes them (the float unrounded, no
        spread, the decimal its float spells, as `BarSnapshot.close_on_or_before` reads it),
        each made once for every run. The timeline's dates are its bars' sessions, so a close
        is read at the session's index: a symbol has a bar on every session from its first, and
        nothing is traded before every symbol's first bar."""
        made = self._quotes.get(session)
        if made is None:
            made = self._quotes[session] = {}
        try:
            # Nearly always each symbol is quoted already (by an earlier run): one lookup each.
            return {symbol: made[symbol] for symbol in symbols}
        except KeyError:
            pass
        quoted = {}
        at = _at_close(self.timeline.dates[session])
        for symbol in symbols:
            quote = made.get(symbol)
            if quote is None:
                close = float(self.timeline.bars.closes[symbol][session])
                assert not math.isnan(close), "every symbol has a bar on every run session"
                quote = made[symbol] = flat_quote(symbol, Decimal(repr(close)), at)
            quoted[symbol] = quote
        return quoted

    # ------------------------------------------------------------------ what the run shows

    def _rebalances(self, run: SimulatedRun) -> tuple[Rebalance, ...]:
        """Each session with orders, with the decision path that chose its targets, walked from
        the timeline's evaluation records on those sessions only."""
        # The report's modules (Jinja) load when a result is made, not with this module.
        from services.backtest.report import step_words

        timing = self.request.timing
        return tuple(
            Rebalance(
                date=run.dates[trade.session],
                orders=trade.orders,
                costs=trade.costs,
                decision=_decision_paths(
                    self._decision(self.timeline.start + trade.session, timing).strategies,
                    step_words,
                ),
            )
            for trade in run.trades
        )

    def _benchmark_symbols(self) -> tuple[str, ...]:
        symbols = self.request.market.bars.symbols
        if self.request.benchmarks is None:
            return (DEFAULT_BENCHMARK,) if DEFAULT_BENCHMARK in symbols else ()
        unknown = [symbol for symbol in self.request.benchmarks if symbol not in symbols]
        if unknown:
            raise BacktestError(
                f"--benchmark {unknown[0]}: the bars hold no {unknown[0]}; import its bars or "
                "choose another benchmark"
            )
        return self.request.benchmarks

    def _benchmark(self, symbol: str, portfolio: Curve) -> Run:
        """Buy and hold of the symbol with the same capital at the start session's close, no
        costs, valued as a position is: at its latest close."""
        bars = self.request.market.bars
        dates = self.timeline.run_dates
        closes = [bars.close_on_or_before(symbol, day) for day in dates]
        first = closes[0]
        if first is None:
            raise BacktestError(
                f"--benchmark {symbol}: no bar on or before the start session {dates[0]}; "
                "choose a benchmark with history there"
            )
        capital = self.request.capital
        values = [capital * (close or first) / first for close in closes]
        curve = Curve.of(dates, values)
        return Run(
            metrics.benchmark_metrics(curve, portfolio, self.request.risk_free),
            tuple(EquityPoint(day, value) for day, value in zip(dates, values, strict=True)),
        )

    def _warnings(self, run: SimulatedRun) -> tuple[str, ...]:
        warnings = list(self.timeline.warnings)
        if self.request.market.synthetic:
            warnings.insert(0, SYNTHETIC_WARNING)
        if run.first_non_positive_cash is not None:
            day, cash = run.first_non_positive_cash
            warnings.append(
                f"cash was {cash:.2f} when rebalancing on {day}: live trading would have "
                "refused to plan from it (docs/trading-rules.md, Non-positive cash); the "
                "backtest plans on (keep a cash reserve to trade as live would)"
            )
        return tuple(warnings)

    def _parameters(self) -> Parameters:
        request = self.request
        rules = request.rules
        options: dict[str, JsonValue] = {
            "start": self.timeline.dates[self.timeline.start].isoformat(),
            "end": self.timeline.dates[self.timeline.end].isoformat(),
            "capital": float(request.capital),
            "rebalance": rules.schedule.mode,
            "corridor": None if rules.schedule.corridor is None else float(rules.schedule.corridor),
            "cash_reserve": float(rules.cash_reserve),
            "min_trade": float(rules.min_trade_fraction),
            "slippage_bps": float(rules.slippage_bps),
            "fees": rules.fees,
            "timing": request.timing,
            "benchmark": list(self._benchmarks),
            "risk_free": request.risk_free,
            "config": None if request.strategies.config is None else str(request.strategies.config),
            "bars": str(request.market.source),
        }
        return Parameters(
            options=options,
            files=request.strategies.file_hashes(),
            strategy_files_hash=f"sha256:{request.strategies.files_hash}",
            bars_hash=f"sha256:{request.market.bars.content_hash}",
            engine_version=metadata.version("alchemiser"),
            synthetic_data=request.market.synthetic,
        )


def _decision_paths(
    outcomes: Mapping[str, object], words: Callable[[Mapping[str, Any]], str]
) -> DecisionPaths:
    """Each file's decision path, as `SignalGenerated` carries it, and in the report's words."""
    return DecisionPaths.of(
        {
            name: decision_step_fields(name, outcome.trace.compact())
            for name, outcome in outcomes.items()
            if isinstance(outcome, StrategyDecision) and outcome.trace is not None
        },
        words,
    )


def _at_close(day: date) -> datetime:
    """A quote's time stamp: the session's date; the planner never reads it."""
    return datetime.combine(day, time(), tzinfo=UTC)


def _curve(run: SimulatedRun) -> Curve:
    return Curve.of(run.dates, run.equity)


def _points(run: SimulatedRun) -> tuple[EquityPoint, ...]:
    return tuple(EquityPoint(day, value) for day, value in zip(run.dates, run.equity, strict=True))


def _timing_outcome(curve: Curve) -> TimingOutcome:
    return TimingOutcome(metrics.cagr(curve), metrics.max_drawdown(curve))
