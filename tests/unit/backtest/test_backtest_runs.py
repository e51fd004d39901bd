"""What one backtest holds: fills and costs worked out by hand, the benchmark, each file on its
own, both timings, the cost drag, and the decision path of every rebalance."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.backtest import metrics
from services.backtest.backtest import Backtest
from services.backtest.result import Order
from tests.unit.backtest.handmade import AAA_ABOVE_11, HALF_AND_HALF, market, request, strategies

DAYS = [date(2024, 5, 6) + timedelta(days=i) for i in range(4)]
ALL_AAA = '(defsymphony "aaa" {} (asset "AAA"))'


def test_fills_and_costs_follow_the_close_the_slippage_and_composers_fees() -> None:
    bars = market(DAYS, {"AAA": [10.0, 10.0, 12.0, 12.0], "BBB": [20.0] * 4})
    backtest = Backtest(
        request(
            strategies(b=AAA_ABOVE_11),
            bars,
            cash_reserve="0.01",
            min_trade="0.01",
            slippage_bps="10",
            fees="composer",
        )
    )

    run = backtest.portfolio().run

    # Start: BBB 0.99 × 10 000 = 9 900 at the close 20 → 495 shares, filled at 20.02.
    first = run.trades[0]
    assert first.orders == (
        Order("BBB", "BUY", Decimal("495.000000"), Decimal("20.020"), Decimal("9909.900000000")),
    )
    assert (first.costs.slippage, first.costs.fees) == (Decimal("9.900000000"), Decimal(0))
    # AAA crosses 11 on the third session: all of BBB is sold at 19.98, then AAA bought.
    sell, buy = run.trades[1].orders
    assert (sell.symbol, sell.side, sell.quantity, sell.price) == (
        "BBB",
        "SELL",
        Decimal("495.000000"),
        Decimal("19.980"),
    )
    # SEC 9 890.10 × 27.80 / 1e6 = 0.2750 → 0.28; TAF 495 × 0.000166 = 0.0822 → 0.09
    assert run.trades[1].costs.fees == Decimal("0.37")
    assert buy.symbol == "AAA" and buy.side == "BUY" and buy.price == Decimal("12.012")
    cash = Decimal(10000) - first.orders[0].value + sell.value - Decimal("0.37") - buy.value
    assert run.equity[2] == cash + buy.quantity * Decimal(12)
    assert run.fees == Decimal("0.37")


def test_the_result_holds_the_benchmark_each_file_both_timings_and_the_cost_drag() -> None:
    aaa = [10.0, 10.5, 11.5, 12.0]
    bars = market(DAYS, {"AAA": aaa, "BBB": [20.0, 20.5, 21.0, 20.0]})
    result = Backtest(
        request(
            strategies(b=AAA_ABOVE_11, half=HALF_AND_HALF),
            bars,
            slippage_bps="5",
            fees="composer",
            benchmarks=("AAA",),
        )
    ).result()

    assert [float(point.value) for point in result.benchmarks["AAA"].equity] == pytest.approx(
        [10000 * price / aaa[0] for price in aaa]
    )
    assert result.benchmarks["AAA"].metrics["beta"] is not None
    assert list(result.strategies) == ["b.clj", "half.clj"]
    assert set(result.timing_sensitivity) == {"close", "previous-close"}
    curve = metrics.Curve.of([p.date for p in result.equity], [p.value for p in result.equity])
    assert result.timing_sensitivity["close"].cagr == metrics.cagr(curve)
    assert result.metrics["cost_drag"] is not None and result.metrics["cost_drag"] > 0
    assert result.costs.slippage > 0 and result.costs.fees > 0


def test_each_rebalance_carries_the_decision_path_that_chose_its_targets() -> None:
    bars = market(DAYS, {"AAA": [10.0, 10.5, 11.5, 12.0], "BBB": [20.0] * 4})
    result = Backtest(request(strategies(b=AAA_ABOVE_11), bars, rebalance="none")).result()

    switch = result.rebalances[1]
    assert switch.date == DAYS[2]
    [step] = json.loads(switch.decision.text)["b.clj"]
    assert (step["kind"], step["span"], step["branch"]) == ("if", "b.clj:1:26", "then")
    assert step["values"] == {"left": 11.5, "right": 11.0}


def test_a_fully_invested_run_plans_on_from_zero_cash_and_says_live_would_not() -> None:
    bars = market(DAYS, {"AAA": [10.0, 11.0, 12.0, 13.0], "BBB": [20.0] * 4})

    result = Backtest(request(strategies(half=HALF_AND_HALF), bars)).result()

    assert len(result.rebalances) == 4
    assert any("live trading would have refused to plan" in w for w in result.data_warnings)
