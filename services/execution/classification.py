"""How orders and executions are judged: an order's final status
(docs/trading-rules.md, Alpaca statuses / Partial fills) and the verdict on an execution, its
counts, status, workflow outcome and reason (docs/trading-rules.md, Outcome classification).

The reason strings keep the numbers and symbols the notification and the operator rely on;
tests pin them so a wording change is a deliberate one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class ExecutionStatus(StrEnum):
    SUCCESS = "SUCCESS"
    PARTIAL = "PARTIAL"
    FAILURE = "FAILURE"


@dataclass(frozen=True)
class OrderOutcome:
    """How one plan item ended.

    `skipped` is a sizing skip (micro-order, quantity rounds to zero): never sent, not placed.
    `filled` means the chain finalised filled or partially filled. `trade_amount` is the plan's
    dollars, which is what the phase trade value sums (not the fill value).
    """

    symbol: str
    trade_amount: Decimal
    skipped: bool
    filled: bool


@dataclass(frozen=True)
class ExecutionVerdict:
    """`success` is the workflow verdict; `raw_success` the classifier flag (status SUCCESS)."""

    status: ExecutionStatus
    orders_placed: int
    orders_succeeded: int
    success: bool
    raw_success: bool
    failure_reason: str | None
    failed_symbols: tuple[str, ...]
    total_trade_value: Decimal


def classify_execution(
    outcomes: Sequence[OrderOutcome], treat_partial_as_failure: bool
) -> ExecutionVerdict:
    """Count, classify and word the result of both phases.

    A PARTIAL execution fails the workflow unless `ALCHEMISER_TREAT_PARTIAL_AS_FAILURE` is
    false; the raw status stays PARTIAL either way so the notification can still say so.
    """
    placed = sum(1 for outcome in outcomes if not outcome.skipped)
    succeeded = sum(1 for outcome in outcomes if outcome.filled and not outcome.skipped)
    failed_symbols = tuple(
        dict.fromkeys(outcome.symbol for outcome in outcomes if not outcome.filled)
    )
    if placed == 0:
        status = ExecutionStatus.FAILURE
    elif succeeded == placed:
        status = ExecutionStatus.SUCCESS
    elif succeeded > 0:
        status = ExecutionStatus.PARTIAL
    else:
        status = ExecutionStatus.FAILURE
    success = status is ExecutionStatus.SUCCESS or (
        status is ExecutionStatus.PARTIAL and not treat_partial_as_failure
    )
    return ExecutionVerdict(
        status=status,
        orders_placed=placed,
        orders_succeeded=succeeded,
        success=success,
        raw_success=status is ExecutionStatus.SUCCESS,
        failure_reason=None
        if success
        else failure_reason(status, succeeded, placed, failed_symbols),
        failed_symbols=failed_symbols,
        total_trade_value=sum(
            (abs(outcome.trade_amount) for outcome in outcomes if outcome.filled), Decimal(0)
        ),
    )


def no_trades_verdict() -> ExecutionVerdict:
    """The verdict of a plan with nothing to trade: success without a broker call
    (docs/trading-rules.md, Execution entry)."""
    return ExecutionVerdict(
        status=ExecutionStatus.SUCCESS,
        orders_placed=0,
        orders_succeeded=0,
        success=True,
        raw_success=True,
        failure_reason=None,
        failed_symbols=(),
        total_trade_value=Decimal(0),
    )


def failure_reason(
    status: ExecutionStatus, succeeded: int, placed: int, failed_symbols: Sequence[str]
) -> str:
    if status is ExecutionStatus.PARTIAL:
        return (
            f"trade execution partially failed: {succeeded}/{placed} orders succeeded. "
            f"Failed symbols: {', '.join(failed_symbols)}"
        )
    if placed == 0:
        return "trade execution failed: no orders were placed"
    return f"trade execution failed: {succeeded}/{placed} orders succeeded"
