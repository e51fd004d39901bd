"""A hand-made backtest result shaped like a real one, for the report's unit tests.

Two years of sessions over seeded random prices; a two-file "configuration" whose first file
switches between leveraged tech and a bond ETF on a moving-average test and whose second holds
fixed weights; monthly rebalances and a trade on every branch switch, with slippage and fees.
The numbers are made up, but every statistic is computed from the curves by the real metrics
functions, so the report shows figures that agree with its charts.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd

from services.backtest import metrics
from services.backtest.metrics import Curve
from services.backtest.report import step_words
from services.backtest.result import (
    Allocation,
    BacktestResult,
    Costs,
    DecisionPaths,
    EquityPoint,
    Order,
    Parameters,
    Rebalance,
    Run,
    TimingOutcome,
)
from shared.events import DecisionStep

CAPITAL = 100_000.0
SYMBOLS = ("SPY", "TQQQ", "SOXL", "BND", "GLD")
DRIFT = {"SPY": 0.0004, "TQQQ": 0.0011, "SOXL": 0.0012, "BND": 0.0001, "GLD": 0.0003}
MARKET_BETA = {"SPY": 1.0, "TQQQ": 3.0, "SOXL": 3.2, "BND": -0.05, "GLD": 0.1}
OWN_VOLATILITY = {"SPY": 0.0, "TQQQ": 0.012, "SOXL": 0.025, "BND": 0.003, "GLD": 0.009}
MARKET_VOLATILITY = 0.011
SLIPPAGE = 0.0001


def prices(sessions: int) -> pd.DataFrame:
    """Each symbol moves with one market factor times its beta, plus its own noise."""
    rng = np.random.default_rng(11)
    index = pd.bdate_range("2023-01-03", periods=sessions)
    market = rng.normal(0.0, MARKET_VOLATILITY, sessions)
    columns = {
        symbol: 50.0
        * np.cumprod(
            1.0
            + DRIFT[symbol]
            + MARKET_BETA[symbol] * market
            + rng.normal(0.0, OWN_VOLATILITY[symbol], sessions)
        )
        for symbol in SYMBOLS
    }
    return pd.DataFrame(columns, index=index)


def targets(
    closes: pd.DataFrame, session: int
) -> tuple[dict[str, float], dict[str, list[DecisionStep]]]:
    spy = closes["SPY"].to_numpy()
    average = float(spy[max(0, session - 99) : session + 1].mean())
    above = spy[session] > average
    tech = {"TQQQ": 0.6, "SOXL": 0.4} if above else {"BND": 1.0}
    weights: dict[str, float] = {}
    for symbol, weight in tech.items():
        weights[symbol] = weights.get(symbol, 0.0) + 0.7 * 0.99 * weight
    for symbol, weight in {"GLD": 0.5, "BND": 0.5}.items():
        weights[symbol] = weights.get(symbol, 0.0) + 0.3 * 0.99 * weight
    decision = {
        "1-TECH.clj": [
            DecisionStep(
                kind="if",
                span="1-TECH.clj:4:5",
                condition='(> (current-price "SPY") (moving-average-price "SPY" {:window 100}))',
                branch="then" if above else "else",
                values={"left": round(float(spy[session]), 2), "right": round(average, 2)},
            ),
            *(
                [
                    DecisionStep(
                        kind="filter",
                        span="1-TECH.clj:6:9",
                        selected=("TQQQ", "SOXL"),
                        values={"TQQQ": 61.4, "SOXL": 58.2, "TECL": 51.9},
                    )
                ]
                if above
                else []
            ),
        ],
        "2-HEDGE.clj": [],
    }
    return weights, decision


def example_result(sessions: int = 520, *, synthetic: bool = True) -> BacktestResult:
    closes = prices(sessions)
    dates = [moment.date() for moment in closes.index]
    cash = CAPITAL
    holdings: dict[str, float] = {}
    equity: list[float] = []
    invested: list[float] = []
    traded: list[float] = []
    order_counts: list[int] = []
    allocations: list[Allocation] = []
    rebalances: list[Rebalance] = []
    total_slippage = total_fees = 0.0
    held_branch: frozenset[str] = frozenset()
    for session, day in enumerate(dates):
        row = closes.iloc[session]
        weights, decision = targets(closes, session)
        value = cash + sum(quantity * row[s] for s, quantity in holdings.items())
        new_month = session == 0 or day.month != dates[session - 1].month
        if new_month or frozenset(weights) != held_branch:
            orders, slippage, fees = [], 0.0, 0.0
            for symbol in sorted(set(weights) | set(holdings)):
                goal = value * weights.get(symbol, 0.0) / row[symbol]
                change = goal - holdings.get(symbol, 0.0)
                if abs(change * row[symbol]) < 0.01 * value:
                    continue
                side = "BUY" if change > 0 else "SELL"
                price = row[symbol] * (1 + SLIPPAGE if side == "BUY" else 1 - SLIPPAGE)
                fee = round(abs(change) * price * 27.8e-6, 2) if side == "SELL" else 0.0
                cash -= change * price + fee
                holdings[symbol] = holdings.get(symbol, 0.0) + change
                slippage += abs(change) * row[symbol] * SLIPPAGE
                fees += fee
                orders.append(
                    Order(
                        symbol=symbol,
                        side=side,
                        quantity=Decimal(f"{abs(change):.6f}"),
                        price=Decimal(f"{price:.6f}"),
                        value=Decimal(f"{abs(change) * price:.2f}"),
                    )
                )
            held_branch = frozenset(weights)
            total_slippage += slippage
            total_fees += fees
            rebalances.append(
                Rebalance(
                    date=day,
                    orders=tuple(orders),
                    costs=Costs(Decimal(f"{slippage:.2f}"), Decimal(f"{fees:.2f}")),
                    decision=DecisionPaths.of(
                        {
                            file: [step.model_dump(mode="json") for step in steps]
                            for file, steps in decision.items()
                        },
                        step_words,
                    ),
                )
            )
            traded.append(sum(float(order.value) for order in orders))
            order_counts.append(len(orders))
        else:
            traded.append(0.0)
            order_counts.append(0)
        positions = {s: quantity * row[s] for s, quantity in holdings.items() if quantity > 1e-9}
        equity.append(cash + sum(positions.values()))
        invested.append(sum(positions.values()))
        allocations.append(
            Allocation(day, {s: v / equity[-1] for s, v in sorted(positions.items())})
        )
    curve = Curve.of(dates, equity)
    free = Curve.of(dates, [v * (1 + 0.00002) ** i for i, v in enumerate(equity)])
    growth = closes / closes.iloc[0]
    spy = Curve.of(dates, list(CAPITAL * growth["SPY"]))
    qqq = Curve.of(dates, list(CAPITAL * growth["TQQQ"]))
    return BacktestResult(
        parameters=Parameters(
            options={
                "start": dates[0].isoformat(),
                "end": dates[-1].isoformat(),
                "capital": CAPITAL,
                "rebalance": "monthly",
                "corridor": None,
                "cash_reserve": 0.01,
                "min_trade": 0.01,
                "slippage_bps": 1,
                "fees": "composer",
                "timing": "close",
                "benchmark": ["SPY", "TQQQ"],
                "risk_free": 0.0,
            },
            files={"1-TECH.clj": "sha256:4be1c0de", "2-HEDGE.clj": "sha256:9a7f00d2"},
            strategy_files_hash="sha256:51c3e8aa",
            bars_hash="sha256:0d9e77f1",
            engine_version="0.1.0",
            synthetic_data=synthetic,
        ),
        metrics=metrics.portfolio_metrics(
            curve, invested=invested, traded=traded, orders=order_counts, without_costs=free
        ),
        equity=points(curve),
        benchmarks={
            "SPY": Run(metrics.benchmark_metrics(spy, curve), points(spy)),
            "TQQQ": Run(metrics.benchmark_metrics(qqq, curve), points(qqq)),
        },
        strategies={
            "1-TECH.clj": run_of(dates, [v * 1.0003**i for i, v in enumerate(equity)]),
            "2-HEDGE.clj": run_of(dates, list(CAPITAL * (growth["GLD"] + growth["BND"]) / 2)),
        },
        rebalances=tuple(rebalances),
        costs=Costs(Decimal(f"{total_slippage:.2f}"), Decimal(f"{total_fees:.2f}")),
        timing_sensitivity={
            "close": TimingOutcome(metrics.cagr(curve), metrics.max_drawdown(curve)),
            "previous-close": TimingOutcome(
                (metrics.cagr(curve) or 0) - 0.021, (metrics.max_drawdown(curve) or 0) + 0.034
            ),
        },
        data_warnings=(
            "synthetic bars: generated sample data, not market history",
            f"first usable date {dates[0].isoformat()}, limited by SOXL's history",
        ),
        allocations=tuple(allocations),
    )


def points(curve: Curve) -> tuple[EquityPoint, ...]:
    return tuple(
        EquityPoint(day, Decimal(f"{value:.2f}"))
        for day, value in zip(curve.dates, curve.values, strict=True)
    )


def run_of(dates: list[date], values: list[float]) -> Run:
    curve = Curve.of(dates, values)
    return Run(metrics.curve_metrics(curve), points(curve))
