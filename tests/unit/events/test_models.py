from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared.events import (
    ConsolidatedPortfolio,
    OrderRequested,
    WorkflowFailed,
    WorkflowStarted,
)
from tests.unit.events.examples import (
    AT,
    WORKFLOW_ID,
    envelope,
    order_fields,
    rebalance_planned,
    workflow_started,
)


def test_events_are_frozen():
    event = workflow_started()
    with pytest.raises(ValidationError):
        event.force = True  # type: ignore[misc]


def test_naive_timestamps_are_read_as_utc_and_aware_ones_normalised():
    naive = WorkflowStarted(
        **{**workflow_started().model_dump(), "occurred_at": AT.replace(tzinfo=None)}
    )
    assert naive.occurred_at == AT
    assert naive.occurred_at.tzinfo is UTC
    new_york = AT.astimezone(timezone(timedelta(hours=-5)))
    shifted = WorkflowStarted(**{**workflow_started().model_dump(), "occurred_at": new_york})
    assert shifted.occurred_at.tzinfo is UTC
    assert shifted.occurred_at == AT


def test_every_workflow_event_needs_an_account():
    fields = workflow_started().model_dump()
    del fields["account_id"]
    with pytest.raises(ValidationError, match="account_id"):
        WorkflowStarted(**fields)


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="qty_typo"):
        WorkflowStarted(**workflow_started().model_dump(), qty_typo=1)


def test_caused_carries_workflow_account_and_causation():
    start = workflow_started()
    fields = start.caused(source="strategy", occurred_at=datetime.now(UTC))
    assert fields["correlation_id"] == start.correlation_id
    assert fields["account_id"] == start.account_id
    assert fields["causation_id"] == str(start.event_id)


def test_symbols_are_stripped_and_upper_cased():
    event = OrderRequested(
        **{**order_fields(), "symbol": " spy "},
        qty=Decimal(1),
        order_type="MARKET",
        reason="fallback",
    )
    assert event.symbol == "SPY"


def test_limit_order_needs_a_limit_price():
    with pytest.raises(ValidationError, match="limit_price is required"):
        OrderRequested(**order_fields(), qty=Decimal(1), order_type="LIMIT", reason="initial")


def _portfolio(weights: dict[str, Decimal]) -> ConsolidatedPortfolio:
    return ConsolidatedPortfolio(
        target_allocations=weights,
        correlation_id=WORKFLOW_ID,
        timestamp=AT,
        strategy_count=1,
        source_strategies=("a",),
    )


def test_consolidated_weights_must_sum_to_one_within_a_percent():
    assert _portfolio({"SPY": Decimal("0.995")}).target_allocations == {"SPY": Decimal("0.995")}
    with pytest.raises(ValidationError, match=r"sum to 0\.98"):
        _portfolio({"SPY": Decimal("0.5"), "QQQ": Decimal("0.48")})


def test_consolidated_weights_refuse_duplicate_symbols_after_upper_casing():
    with pytest.raises(ValidationError, match="appears twice"):
        _portfolio({"spy": Decimal("0.5"), "SPY": Decimal("0.5")})


def test_consolidated_weights_refuse_empty_and_zero_weights():
    with pytest.raises(ValidationError, match="no positive target allocations"):
        _portfolio({})
    with pytest.raises(ValidationError, match="drop QQQ"):
        _portfolio({"SPY": Decimal("1"), "QQQ": Decimal("0")})


def test_trades_required_must_agree_with_the_plan_items():
    fields = rebalance_planned().model_dump()
    fields["trades_required"] = False
    with pytest.raises(ValidationError, match="trades_required"):
        type(rebalance_planned())(**fields)


def test_plan_id_and_items_are_reachable_from_the_event():
    event = rebalance_planned()
    assert event.plan_id == event.rebalance_plan.plan_id
    assert event.items[0].symbol == "SPY"


def test_deadline_failure_must_name_the_stalled_step():
    with pytest.raises(ValidationError, match="stalled_step is required"):
        WorkflowFailed(
            **envelope("strategy"),
            failure_reason="deadline passed",
            failure_step="trade_execution",
            deadline_exceeded=True,
        )
