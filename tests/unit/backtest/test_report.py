"""The report page and the JSON object, from a hand-made result; the browser test opens the page."""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import replace
from html.parser import HTMLParser
from importlib import resources

import pytest

from services.backtest.report import metric_text, write_report
from services.backtest.result import BacktestResult
from tests.unit.backtest.example import example_result

CONTRACT_KEYS = [
    "parameters",
    "metrics",
    "equity",
    "benchmarks",
    "strategies",
    "rebalances",
    "costs",
    "timing_sensitivity",
    "data_warnings",
]


def render_report(result: BacktestResult) -> str:
    page = io.StringIO()
    write_report(result, page)
    return page.getvalue()


@pytest.fixture(scope="module")
def result() -> BacktestResult:
    return example_result(sessions=300)


@pytest.fixture(scope="module")
def page(result: BacktestResult) -> str:
    return render_report(result)


class Resources(HTMLParser):
    """Collects every attribute that could make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "poster", "action") and value:
                self.fetched.append((tag, name, value))


def test_the_page_links_to_nothing(page: str) -> None:
    parser = Resources()
    parser.feed(page)
    assert parser.fetched == []
    assert "@import" not in page
    assert not re.search(r"url\((?!data:)", page)


def test_the_page_inlines_the_vendored_chart_library_unchanged(page: str) -> None:
    vendor = resources.files("services.backtest").joinpath("vendor")
    for name, digest in {
        "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
        "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
    }.items():
        text = vendor.joinpath(name).read_text("utf-8")
        assert hashlib.sha256(text.encode()).hexdigest() == digest
        assert text in page


def test_the_chart_data_is_json_without_nan(page: str) -> None:
    match = re.search(r'<script type="application/json" id="backtest-data">(.*?)</script>', page)
    assert match is not None
    data = json.loads(match.group(1), parse_constant=pytest.fail)
    assert len(data["dates"]) == len(data["drawdown"]) == 300
    assert [line["label"] for line in data["equity"]] == [
        "Portfolio",
        "SPY",
        "TQQQ",
        "1-TECH.clj",
        "2-HEDGE.clj",
    ]
    assert data["allocation"]["bands"][-1]["label"] == "Cash"
    assert data["allocation"]["bands"][-1]["edge"] == [1.0] * 300


def test_synthetic_data_is_flagged_in_the_header_only_when_it_is(result: BacktestResult) -> None:
    flagged = render_report(result)
    real = render_report(
        replace(result, parameters=replace(result.parameters, synthetic_data=False))
    )
    assert "Synthetic sample data." in flagged
    assert "Synthetic sample data." not in real


def test_the_header_names_the_hashes_and_the_engine_version(page: str) -> None:
    for text in ("sha256:0d9e77f1", "sha256:51c3e8aa", "sha256:4be1c0de", "engine 0.1.0"):
        assert text in page


def test_each_rebalance_shows_its_orders_and_decision_path(
    result: BacktestResult, page: str
) -> None:
    first = result.rebalances[0]
    assert f"<strong>{first.date.isoformat()}</strong>" in page
    assert "1-TECH.clj:4:5" in page
    assert "branch" in page  # the condition's outcome, in the trading email's words
    assert "No decision steps: no condition or filter chose this file's weights." in page


def test_undefined_statistics_read_as_a_dash(result: BacktestResult) -> None:
    page = render_report(replace(result, metrics=dict(result.metrics, sharpe=None)))
    assert re.search(r"Sharpe ratio</th><td class=\"num \">—</td>", page)


@pytest.mark.parametrize(
    ("value", "kind", "text"),
    [
        (0.12345, "return", "12.35%"),
        (-0.5, "fraction", "-50.00%"),
        (1.234, "ratio", "1.23"),
        (1234, "count", "1,234"),
        (None, "ratio", "—"),
        (float("nan"), "fraction", "—"),
    ],
)
def test_metric_text(value: float | None, kind: str, text: str) -> None:
    assert metric_text(value, kind) == text


def test_the_json_object_holds_the_contracts_keys_and_only_numbers(result: BacktestResult) -> None:
    out = io.StringIO()
    result.write_json(out)
    loaded = json.loads(out.getvalue())
    assert list(loaded)[: len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert loaded["equity"][0] == {
        "date": result.equity[0].date.isoformat(),
        "value": float(result.equity[0].value),
    }
    assert set(loaded["costs"]) == {"slippage", "fees"}
    assert set(loaded["timing_sensitivity"]) == {"close", "previous-close"}
    assert set(loaded["benchmarks"]["SPY"]) == {"metrics", "equity"}
    rebalance = loaded["rebalances"][0]
    assert set(rebalance) == {"date", "orders", "costs", "decision"}
    assert set(rebalance["orders"][0]) == {"symbol", "side", "quantity", "price", "value"}
    assert rebalance["decision"]["1-TECH.clj"][0]["kind"] == "if"
    assert loaded["parameters"]["bars_hash"] == "sha256:0d9e77f1"
    assert loaded["parameters"]["files"] == {
        "1-TECH.clj": "sha256:4be1c0de",
        "2-HEDGE.clj": "sha256:9a7f00d2",
    }
