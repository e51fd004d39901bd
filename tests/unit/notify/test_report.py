"""The report model is built from a workflow's events alone: what was decided, planned,
traded, and how the portfolio changed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.notify.report import ReportError, build_report, channels_notified
from shared.events import NotificationSent, RebalancePlanned
from tests.unit.notify import workflows


def test_success_report_carries_every_step_of_the_workflow() -> None:
    report = build_report(workflows.success().events)

    assert report.outcome == "success"
    assert report.mode == "PAPER"
    assert [s.strategy for s in report.strategies] == ["1-KMLM", "2-Nuclear"]
    assert report.consolidated[0] == ("SPY", Decimal("0.5"))
    assert report.plan is not None
    assert [(row.symbol, row.action) for row in report.plan] == [
        ("SPY", "HOLD"),
        ("TLT", "SELL"),
        ("TQQQ", "BUY"),
    ]
    assert report.execution is not None
    assert report.execution.orders_succeeded == 2
    assert report.failure is None


def test_portfolio_after_is_before_plus_fills_valued_at_the_planning_prices() -> None:
    report = build_report(workflows.success().events)

    portfolio = report.portfolio
    assert portfolio is not None
    holdings = {row.symbol: row for row in portfolio.holdings}
    assert holdings["TLT"].qty_after == Decimal(200)
    assert holdings["TLT"].value_after == Decimal("20000.00")
    assert holdings["TQQQ"].qty_before == Decimal(0)
    assert holdings["TQQQ"].value_after == Decimal("29977.425")
    assert holdings["SPY"].value_after == Decimal("50000.00")
    assert portfolio.cash_after == Decimal("12.55")
    assert portfolio.total_after == Decimal("99989.975")


def test_one_valuation_per_run_the_plans_even_where_the_broker_marks_otherwise() -> None:
    """The broker marks SPY at its last price ($501.0072); the plan valued it at its quote's
    mid ($500.00): the report's before and after use the plan's price, so a holding shows one
    value in a run (docs/trading-rules.md, Report contents)."""
    workflow = workflows.success()
    planned = next(e for e in workflow.events if isinstance(e, RebalancePlanned))
    marked = tuple(
        p.model_copy(update={"market_value": p.qty * Decimal("501.0072")})
        if p.symbol == "SPY"
        else p
        for p in planned.snapshot.positions
    )
    workflow.events[workflow.events.index(planned)] = planned.model_copy(
        update={"snapshot": planned.snapshot.model_copy(update={"positions": marked})}
    )
    report = build_report(workflow.events)

    assert report.portfolio is not None and report.plan is not None
    plan = {row.symbol: row for row in report.plan}
    holdings = {row.symbol: row for row in report.portfolio.holdings}
    assert holdings["SPY"].value_before == plan["SPY"].current_value == Decimal("50000.00")
    assert holdings["SPY"].value_after == Decimal("50000.00")
    assert report.portfolio.total_before == Decimal("100000.00")


def test_without_fills_the_portfolio_after_is_the_portfolio_before() -> None:
    report = build_report(workflows.no_trade().events)

    assert report.portfolio is not None
    assert all(row.value_after == row.value_before for row in report.portfolio.holdings)
    assert report.portfolio.cash_after == report.portfolio.cash_before
    assert report.portfolio.total_after == Decimal("100000.00")


def test_unfilled_order_leaves_the_position_and_cash_alone() -> None:
    report = build_report(workflows.partial_failure().events)

    assert report.portfolio is not None
    holdings = {row.symbol: row for row in report.portfolio.holdings}
    assert "TQQQ" not in holdings
    assert report.portfolio.cash_after == Decimal("30010.00")


def test_foreign_open_orders_are_reported() -> None:
    report = build_report(workflows.success().events)

    assert [order.broker_order_id for order in report.foreign_open_orders] == ["b-manual-7"]


def test_foreign_orders_come_from_the_plan_when_execution_never_ran() -> None:
    report = build_report(workflows.deadline_failure().events)

    assert [order.symbol for order in report.foreign_open_orders] == ["AAPL"]


def test_deadline_failure_names_the_stalled_step_and_maps_to_an_order_timeout() -> None:
    report = build_report(workflows.deadline_failure().events)

    assert report.failure is not None
    assert report.failure.deadline_exceeded
    assert report.failure.stalled_step == "trade_execution"
    assert report.failure.code == "TRD_ORDER_TIMEOUT"
    assert report.execution is None
    assert report.portfolio is not None and not report.portfolio.after_known


def test_orders_of_a_stalled_execution_are_folded_from_their_own_events() -> None:
    report = build_report(workflows.execution_stalled().events)

    assert report.execution is None
    rows = {row.symbol: row for row in report.order_activity}
    assert rows["TLT"].requested_qty == Decimal(200)
    assert rows["TLT"].filled_qty == Decimal(200)
    assert rows["TLT"].avg_fill_price == Decimal("100.0120")
    assert (rows["TLT"].final_status, rows["TLT"].attempts) == ("filled", 2)
    assert (rows["TQQQ"].final_status, rows["TQQQ"].filled_qty) == ("submitted", Decimal(0))


def test_no_order_activity_when_execution_reported() -> None:
    assert build_report(workflows.partial_failure().events).order_activity == ()


def test_rejection_for_buying_power_gives_its_catalogue_code() -> None:
    report = build_report(workflows.partial_failure().events)

    assert report.failure is not None
    assert report.failure.code == "TRD_BUYING_POWER"


def test_strategy_failure_has_no_plan_or_orders() -> None:
    report = build_report(workflows.strategy_failure().events)

    assert report.failure is not None
    assert report.failure.step == "signal_generation"
    assert report.failure.code is None
    assert report.plan is None and report.execution is None and report.portfolio is None


def test_the_first_ending_is_the_one_reported() -> None:
    workflow = workflows.success().failed("trade_execution", "late failure after completion")

    assert build_report(workflow.events).outcome == "success"


def test_live_mode_comes_from_the_workflow_start() -> None:
    workflow = workflows.Workflow(live=True).started().failed("signal_generation", "no bars")

    assert build_report(workflow.events, default_live=False).mode == "LIVE"


def test_a_running_workflow_has_no_report_yet() -> None:
    with pytest.raises(ReportError, match="neither WorkflowCompleted nor WorkflowFailed"):
        build_report(workflows.Workflow().started().signal().events)


def test_channels_already_notified_are_read_from_the_events() -> None:
    workflow = workflows.success()
    completed = workflow.events[-1]
    workflow.add(
        NotificationSent(
            **completed.caused(source="notify", occurred_at=completed.occurred_at),
            channel="email",
            status="failed",
            attempts=3,
            error="down",
        )
    )
    workflow.add(
        NotificationSent(
            **completed.caused(source="notify", occurred_at=completed.occurred_at),
            channel="apprise",
            target="tgram://1...p/-100123/",
            status="sent",
            attempts=1,
        )
    )

    assert channels_notified(workflow.events) == {
        ("email", None),
        ("apprise", "tgram://1...p/-100123/"),
    }
