"""The streamed JSON and report of a small backtest are, byte for byte, what the code wrote
before they were streamed (tests/unit/backtest/golden.py)."""

from __future__ import annotations

import hashlib
import io

from services.backtest.report import write_report
from tests.unit.backtest.golden import JSON_FILE, REPORT_SHA256, golden_result


def test_the_json_output_is_the_one_written_whole_before() -> None:
    out = io.StringIO()
    golden_result().write_json(out)
    assert out.getvalue() == JSON_FILE.read_text(encoding="utf-8")


def test_the_report_is_the_one_rendered_whole_before() -> None:
    first, second = io.StringIO(), io.StringIO()
    write_report(golden_result(), first, second)
    assert first.getvalue() == second.getvalue()
    assert hashlib.sha256(first.getvalue().encode()).hexdigest() == REPORT_SHA256
