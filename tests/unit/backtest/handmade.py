"""Hand-made backtests: strategy files written inline and a few sessions of bars, run through
the real backtest with every cost and live rule off unless a test turns one on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path

from services.backtest.backtest import BacktestRequest
from services.backtest.costs import FeeModel
from services.backtest.inputs import Strategies
from services.backtest.rebalance_schedule import RebalanceMode, RebalanceSchedule
from services.backtest.result import Timing
from services.backtest.simulation import TradingRules
from services.strategy.dsl.compiler import parse_symphony
from services.strategy.signals import files_hash
from shared.marketdata.bar_source import BarSource
from shared.marketdata.bars import BarSnapshot

HALF_AND_HALF = '(defsymphony "half" {} (weight-equal [(asset "AAA") (asset "BBB")]))'
AAA_ABOVE_11 = (
    '(defsymphony "branch" {} (if (> (current-price "AAA") 11) (asset "AAA") (asset "BBB")))'
)


def strategies(**sources: str) -> Strategies:
    """Files named `<keyword>.clj` with the given source, weighted equally."""
    symphonies = {
        f"{name}.clj": parse_symphony(source, f"{name}.clj") for name, source in sources.items()
    }
    return Strategies(
        symphonies=symphonies,
        file_weights={name: 1 / len(symphonies) for name in symphonies},
        config=None,
        files_hash=files_hash(symphonies),
        warnings=(),
    )


def market(days: Sequence[date], closes: Mapping[str, Sequence[float]]) -> BarSource:
    return BarSource(BarSnapshot.from_closes(days, closes), False, Path("hand-made.parquet"))


def request(
    files: Strategies,
    bars: BarSource,
    *,
    rebalance: RebalanceMode = "daily",
    corridor: str | None = None,
    cash_reserve: str = "0",
    min_trade: str = "0",
    slippage_bps: str = "0",
    fees: FeeModel = "none",
    timing: Timing = "close",
    start: date | None = None,
    end: date | None = None,
    capital: str = "10000",
    benchmarks: tuple[str, ...] = (),
) -> BacktestRequest:
    return BacktestRequest(
        strategies=files,
        market=bars,
        start=start,
        end=end,
        capital=Decimal(capital),
        rules=TradingRules(
            schedule=RebalanceSchedule(rebalance, None if corridor is None else Decimal(corridor)),
            cash_reserve=Decimal(cash_reserve),
            min_trade_fraction=Decimal(min_trade),
            min_notional_usd=Decimal("1.00"),
            slippage_bps=Decimal(slippage_bps),
            fees=fees,
        ),
        timing=timing,
        benchmarks=benchmarks,
        risk_free=0.0,
    )
