"""The rendered report: its sections for each way a run ends, amounts formatted, and never a
template leftover; a report that cannot be rendered becomes the minimal one
(docs/trading-rules.md, Report contents / Minimal report)."""

from __future__ import annotations

import re

import pytest
from jinja2 import DictLoader, Environment, StrictUndefined

from services.notify.rendering import RenderedReport, render_workflow, strategy_label
from tests.unit.notify import workflows

LEFTOVERS = re.compile(r"\{\{|\}\}|\{%|%\}|\bNone\b|\bnan\b|\bUndefined\b", re.IGNORECASE)

ENDINGS = {
    "success": workflows.success,
    "no_trade": workflows.no_trade,
    "partial_failure": workflows.partial_failure,
    "strategy_failure": workflows.strategy_failure,
    "deadline_failure": workflows.deadline_failure,
    "execution_stalled": workflows.execution_stalled,
}


def rendered(workflow: workflows.Workflow, *, neutral: bool = False) -> RenderedReport:
    return render_workflow(workflow.events, neutral=neutral, default_live=False)


@pytest.mark.parametrize("ending", sorted(ENDINGS))
@pytest.mark.parametrize("neutral", [False, True])
def test_no_template_leftovers_in_any_ending(ending: str, neutral: bool) -> None:
    report = rendered(ENDINGS[ending](), neutral=neutral)

    assert not report.fallback
    for body in (report.html, report.text, report.summary):
        assert LEFTOVERS.search(body) is None, LEFTOVERS.search(body)


def test_a_missing_indicator_value_reads_n_a() -> None:
    workflow = workflows.Workflow().started().signal(missing_score=True)
    workflow.failed("portfolio_analysis", "Invalid price for SOXL")
    report = rendered(workflow)

    assert "filter selected TQQQ (score 12.35), SOXL (score n/a)" in report.text
    assert LEFTOVERS.search(report.html) is None and LEFTOVERS.search(report.text) is None


def test_success_subject_banner_and_status_line() -> None:
    report = rendered(workflows.success())

    assert report.subject == "[SUCCESS] Alchemiser - PAPER Trading Report"
    assert "PAPER Multi-Strategy Execution Report" in report.html
    assert "Status: Completed Successfully | 2026-03-02 20:45:04 UTC" in report.html
    assert report.text.startswith("Trading execution completed. Success: True\n")


def test_a_run_on_the_synthetic_sample_says_so_in_every_part() -> None:
    workflow = workflows.Workflow().started().signal(synthetic=True).planned().executed()
    report = rendered(workflow.completed())

    for body in (report.html, report.text, report.summary):
        assert "synthetic sample data" in body
    assert "synthetic" not in rendered(workflows.success()).text.lower()


def test_a_target_below_the_minimum_trade_says_why_it_is_held() -> None:
    workflow = workflows.Workflow().started().signal().planned(small=True).executed()
    report = rendered(workflow.completed())

    why = "not bought: $800.00 is below the minimum trade of $1,000.00"
    assert why in report.text and why in report.html
    assert "TQQQ" in report.text and "below the minimum trade" not in report.text.split("TQQQ")[1]


def test_success_sections_show_signals_decisions_plan_orders_and_portfolio() -> None:
    html = rendered(workflows.success()).html

    assert "2 order(s) executed" in html
    assert "1-KMLM" in html and "2-NUCLEAR" in html
    assert "if (&gt; (rsi SPY 10) 80) (left 71.25, right 80.00) → else branch" in html
    assert "filter selected TQQQ (score 12.35)" in html
    assert "inverse-volatility weights: SPY 50.0%, TLT 50.0%" in html
    assert "+$30,000.00" in html and "-$20,000.00" in html
    assert "400.50" in html and "$74.90" in html and "Filled" in html
    assert "$99,989.98" in html and "$12.55" in html
    assert "b-manual-7" in html
    assert "Skipped BUY XLK: quantity rounds to zero" in html
    assert "informational and not investment advice" in html
    assert "Recommended actions" not in html


def test_strategy_files_read_in_capitals_without_the_extension() -> None:
    assert strategy_label("1-KMLM.clj") == "1-KMLM"
    assert strategy_label("2-Nuclear") == "2-NUCLEAR"


def test_text_part_has_the_same_sections() -> None:
    text = rendered(workflows.success()).text

    for heading in (
        "SIGNALS",
        "DECISION PATH",
        "REBALANCE PLAN",
        "ORDERS",
        "PORTFOLIO BEFORE AND AFTER",
        "OPEN ORDERS LEFT ALONE",
    ):
        assert heading in text
    assert "BUY  TQQQ   asked 400.50, filled 400.50 at $74.90, Filled, 2 attempt(s)" in text


def test_no_trade_says_no_rebalancing_was_required() -> None:
    report = rendered(workflows.no_trade())

    assert "No rebalancing was required" in report.html
    assert "No orders were placed" in report.text


def test_partial_failure_lists_failed_symbols_and_the_rejection() -> None:
    report = rendered(workflows.partial_failure())

    assert report.subject == "[FAILURE][TRD_BUYING_POWER] Alchemiser - PAPER Trading Report"
    assert "PAPER Trading Execution Failed" in report.html
    assert "Failed Symbols: TQQQ" in report.text
    assert "Orders Placed: 2" in report.text and "Orders Succeeded: 1" in report.text
    assert "Rejected" in report.html and "insufficient buying power" in report.html
    assert report.text.startswith("Trading execution completed. Success: False\n")


def test_strategy_failure_shows_the_reason_step_and_actions_only() -> None:
    report = rendered(workflows.strategy_failure())

    assert report.subject == "[FAILURE] Alchemiser - PAPER Trading Report"
    assert "bars are older than the last completed session" in report.html
    assert "Signal generation (strategy service)" in report.html
    assert "Verify broker connectivity and credentials." in report.html
    assert "escalate quoting the correlation id" in report.text
    assert "Orders Placed" not in report.text
    assert "REBALANCE PLAN" not in report.text


def test_deadline_failure_names_the_stalled_step_and_keeps_earlier_sections() -> None:
    report = rendered(workflows.deadline_failure())

    assert "[TRD_ORDER_TIMEOUT]" in report.subject
    assert "it stalled in: Trade execution (execution service)" in report.text
    assert "REBALANCE PLAN" in report.text
    assert "the portfolio after the run is not known" in report.text


def test_orders_of_a_stalled_execution_are_shown_with_their_fills() -> None:
    report = rendered(workflows.execution_stalled())

    assert "Orders recorded before the failure" in report.html
    assert "SELL TLT    asked 200.00, filled 200.00 at $100.01, Filled, 2 attempt(s)" in report.text
    assert "BUY  TQQQ   asked 400.50, filled — at —, Pending, 1 attempt(s)" in report.text


def test_live_mode_reads_live_in_subject_and_banner() -> None:
    workflow = workflows.Workflow(live=True).started().failed("signal_generation", "no bars")
    report = rendered(workflow)

    assert report.subject == "[FAILURE] Alchemiser - LIVE Trading Report"
    assert "LIVE Trading Execution Failed" in report.html


def test_neutral_mode_hides_account_totals() -> None:
    full = rendered(workflows.success())
    neutral = rendered(workflows.success(), neutral=True)

    for total in ("$100,000.00", "$99,989.98", "$10,000.00", "$12.55"):
        assert total in full.html
        assert total not in neutral.html
        assert total not in neutral.text
        assert total not in neutral.summary
    assert "$29,977.43" in neutral.html


def test_html_escapes_what_the_events_say() -> None:
    workflow = workflows.Workflow().started().failed("signal_generation", "<script>x</script>")

    html = rendered(workflow).html

    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_a_template_that_cannot_render_falls_back_to_the_minimal_report() -> None:
    broken = Environment(
        loader=DictLoader({"report.html.j2": "{{ missing.field }}", "report.txt.j2": "x"}),
        undefined=StrictUndefined,
    )
    workflow = workflows.success()

    report = render_workflow(workflow.events, neutral=False, default_live=False, environment=broken)

    assert report.fallback
    assert report.subject == "[SUCCESS] Alchemiser - PAPER Trading Report"
    for fact in ("PAPER", "Completed Successfully", "$50,007.45", workflow.id, "20:45:04 UTC"):
        assert fact in report.html
    assert "Orders placed</td><td>2" in report.html
    assert LEFTOVERS.search(report.html) is None


def test_minimal_report_of_a_failure_without_execution_says_zero_orders() -> None:
    broken = Environment(loader=DictLoader({}))
    workflow = workflows.strategy_failure()

    report = render_workflow(workflow.events, neutral=False, default_live=False, environment=broken)

    assert report.fallback
    assert report.subject == "[FAILURE] Alchemiser - PAPER Trading Report"
    assert "Orders placed</td><td>0" in report.html and "$0.00" in report.html


def test_the_chat_summary_names_each_trade_and_the_outcome() -> None:
    summary = rendered(workflows.partial_failure()).summary.splitlines()

    assert summary[0].startswith("*PAPER Trading Execution Failed*")
    assert "SELL TLT $20,010.00 (Filled)" in summary
    assert "BUY TQQQ — (Rejected)" in summary


def test_a_stalled_run_summary_names_the_orders_the_events_recorded() -> None:
    summary = rendered(workflows.execution_stalled()).summary.splitlines()

    assert "SELL TLT $20,002.40 (Filled)" in summary
    assert "BUY TQQQ — (Pending)" in summary
