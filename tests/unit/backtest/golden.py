"""A small backtest whose JSON output and report were written by the code before the output was
streamed (commit fffa6b5: `json.dumps(result.to_json())` and the report rendered as one string),
so a change in how they are written cannot change what they hold. The JSON is kept as it was
written (`golden/backtest.json`), the report as the SHA-256 of its text (`REPORT_SHA256`; its 138
KB are mostly the inlined chart library).

Three files over 60 sessions of four symbols: nested `if`s on indicators, a filter ranking
assets, inverse-volatility weights and a filter ranking groups, traded daily under the live
rules with slippage and fees. The engine version is fixed, so the outputs do not depend on the
installed version.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from services.backtest.backtest import Backtest
from services.backtest.result import BacktestResult
from tests.unit.backtest.handmade import market, request, strategies

JSON_FILE = Path(__file__).with_name("golden") / "backtest.json"
REPORT_SHA256 = "5f3dd347dace4dd68b4ad48d3d05909beafa0ec2cd7e8129ee196dddae371b6b"
ENGINE_VERSION = "golden"

ROTATION = """(defsymphony "rotation" {}
  (if (> (rsi "AAA" {:window 5}) 55)
      (if (< (cumulative-return "BBB" {:window 3}) 1)
          (filter (moving-average-return {:window 4}) (select-top 2)
                  [(asset "AAA") (asset "BBB") (asset "CCC") (asset "DDD")])
          (asset "CCC"))
      (weight-inverse-volatility 5 [(asset "BBB") (asset "DDD")])))"""
GROUPS = """(defsymphony "groups" {}
  (filter (cumulative-return {:window 5}) (select-bottom 1)
          [(group "up" [(if (> (current-price "AAA") (moving-average-price "AAA" {:window 6}))
                            (asset "AAA") (asset "DDD"))])
           (group "down" [(weight-equal [(asset "BBB") (asset "CCC")])])]))"""
FIXED = '(defsymphony "fixed" {} (weight-specified 0.7 (asset "CCC") 0.3 (asset "DDD")))'


def golden_result() -> BacktestResult:
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(90)]
    days = [day for day in days if day.weekday() < 5][:60]
    closes = {
        symbol: [
            round(50 * (1 + 0.002 * shift) ** i * (1 + 0.04 * math.sin(i / (2 + shift))), 4)
            for i in range(len(days))
        ]
        for shift, symbol in enumerate(("AAA", "BBB", "CCC", "DDD"))
    }
    result = Backtest(
        request(
            strategies(rotation=ROTATION, groups=GROUPS, fixed=FIXED),
            market(days, closes),
            cash_reserve="0.01",
            min_trade="0.01",
            slippage_bps="1",
            fees="composer",
            benchmarks=("AAA",),
        )
    ).result()
    return replace(result, parameters=replace(result.parameters, engine_version=ENGINE_VERSION))
