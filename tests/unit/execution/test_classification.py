from __future__ import annotations

from decimal import Decimal

import pytest

from services.execution.classification import (
    ExecutionStatus,
    OrderOutcome,
    classify_execution,
    no_trades_verdict,
)


def filled(symbol: str, amount: str = "100") -> OrderOutcome:
    return OrderOutcome(symbol, Decimal(amount), skipped=False, filled=True)


def failed(symbol: str, amount: str = "100") -> OrderOutcome:
    return OrderOutcome(symbol, Decimal(amount), skipped=False, filled=False)


def skipped(symbol: str, amount: str = "0.50") -> OrderOutcome:
    return OrderOutcome(symbol, Decimal(amount), skipped=True, filled=False)


def test_every_placed_order_filled_is_success_without_reason() -> None:
    verdict = classify_execution([filled("AAA", "-505"), filled("BBB", "9405")], True)

    assert verdict.status is ExecutionStatus.SUCCESS
    assert (verdict.orders_placed, verdict.orders_succeeded) == (2, 2)
    assert verdict.success and verdict.raw_success
    assert verdict.failure_reason is None
    assert verdict.failed_symbols == ()
    assert verdict.total_trade_value == Decimal(9910)


def test_8_35_partial_fails_the_workflow_by_default_naming_failed_symbols() -> None:
    outcomes = [filled("AAA"), failed("BBB"), filled("CCC"), skipped("DDD")]

    verdict = classify_execution(outcomes, treat_partial_as_failure=True)

    assert verdict.status is ExecutionStatus.PARTIAL
    assert (verdict.orders_placed, verdict.orders_succeeded) == (3, 2)
    assert not verdict.success and not verdict.raw_success
    assert verdict.failure_reason == (
        "trade execution partially failed: 2/3 orders succeeded. Failed symbols: BBB, DDD"
    )
    assert verdict.failed_symbols == ("BBB", "DDD")
    assert verdict.total_trade_value == Decimal(200)


def test_8_36_partial_completes_the_workflow_when_partial_is_not_failure() -> None:
    verdict = classify_execution([filled("AAA"), failed("BBB")], treat_partial_as_failure=False)

    assert verdict.status is ExecutionStatus.PARTIAL
    assert verdict.success
    assert not verdict.raw_success
    assert verdict.failure_reason is None
    assert verdict.failed_symbols == ("BBB",)


def test_8_34_all_orders_failing_is_failure_zero_of_p() -> None:
    verdict = classify_execution([failed("AAA"), failed("BBB"), skipped("CCC")], False)

    assert verdict.status is ExecutionStatus.FAILURE
    assert not verdict.success
    assert verdict.failure_reason == "trade execution failed: 0/2 orders succeeded"
    assert verdict.failed_symbols == ("AAA", "BBB", "CCC")
    assert verdict.total_trade_value == 0


@pytest.mark.parametrize(
    "outcomes",
    [[], [skipped("AAA"), skipped("BBB")]],
    ids=["no-outcomes", "8-14-8-15-every-item-skipped"],
)
def test_nothing_placed_is_failure_no_orders_were_placed(outcomes: list[OrderOutcome]) -> None:
    verdict = classify_execution(outcomes, treat_partial_as_failure=True)

    assert verdict.status is ExecutionStatus.FAILURE
    assert verdict.orders_placed == 0
    assert verdict.failure_reason == "trade execution failed: no orders were placed"


def test_8_06_a_plan_without_trades_is_success_with_zero_orders() -> None:
    verdict = no_trades_verdict()

    assert verdict.success and verdict.status is ExecutionStatus.SUCCESS
    assert (verdict.orders_placed, verdict.orders_succeeded) == (0, 0)
    assert verdict.total_trade_value == 0
