"""A block's allocation at many sessions at once.

The evaluator computes every node over all the sessions it is needed at in one pass, so an
allocation is a matrix (sessions × tickers) rather than one weight map. Columns are kept in
alphabetical ticker order: sums over tickers then run in the same order for every node, which
makes equal holdings give bit-identical synthetic returns (filter ties are exact
comparisons: docs/strategy-language.md, Filter ties).

A row can fail instead of holding weights (insufficient history, NaN, zero volatility at that
session): `failures[row]` is then an index into the run's failure table, and the row's weights
are zero. A parent fails at a session as soon as a child that contributes there fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

NO_FAILURE = -1

SessionIndex = npt.NDArray[np.int64]
FailureCodes = npt.NDArray[np.int64]
Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SessionAllocation:
    """Weights of one block at `sessions` (ascending session indices of the bar data)."""

    sessions: SessionIndex
    tickers: tuple[str, ...]
    weights: Matrix
    failures: FailureCodes

    def rows_of(self, sessions: SessionIndex) -> npt.NDArray[np.int64]:
        """Row positions of `sessions`, which must all be present."""
        return np.searchsorted(self.sessions, sessions).astype(np.int64)


@dataclass(frozen=True, slots=True)
class WeightedPart:
    """A child's allocation scaled by `coefficient` (a scalar, or one value per target row)."""

    coefficient: float | Matrix
    allocation: SessionAllocation


def no_failures(count: int) -> FailureCodes:
    return np.full(count, NO_FAILURE, dtype=np.int64)


def single_ticker(ticker: str, sessions: SessionIndex) -> SessionAllocation:
    return SessionAllocation(
        sessions=sessions,
        tickers=(ticker,),
        weights=np.ones((sessions.size, 1), dtype=np.float64),
        failures=no_failures(sessions.size),
    )


def first_failure(current: FailureCodes, incoming: FailureCodes) -> FailureCodes:
    """Keep an existing failure; otherwise take the incoming one."""
    return np.where(current == NO_FAILURE, incoming, current)


def combine(
    sessions: SessionIndex,
    parts: Sequence[WeightedPart],
    failures: FailureCodes | None = None,
) -> SessionAllocation:
    """`Σ coefficient · allocation` at `sessions`, adding weights of equal tickers.

    A part may cover only some of the target sessions (an `if` branch) or more of them (a filter
    candidate evaluated over its scoring window too); only the shared sessions are used. A part
    that fails at a shared session fails the result there, unless its coefficient is zero there.
    """
    merged = no_failures(sessions.size) if failures is None else failures.copy()
    tickers = sorted({ticker for part in parts for ticker in part.allocation.tickers})
    column_of = {ticker: column for column, ticker in enumerate(tickers)}
    weights = np.zeros((sessions.size, len(tickers)), dtype=np.float64)
    for part in parts:
        child = part.allocation
        target_rows: slice | npt.NDArray[np.intp]
        child_rows: slice | npt.NDArray[np.intp]
        if child.sessions.size == sessions.size and np.array_equal(child.sessions, sessions):
            # Every row, as a slice: views instead of copies, the same sums.
            target_rows = child_rows = slice(None)
            count = sessions.size
        else:
            _, target_rows, child_rows = np.intersect1d(
                sessions, child.sessions, assume_unique=True, return_indices=True
            )
            count = target_rows.size
        if count == 0:
            continue
        columns = np.fromiter((column_of[t] for t in child.tickers), dtype=np.int64)
        coefficient = part.coefficient
        if isinstance(coefficient, np.ndarray):
            row_coefficient = coefficient[target_rows]
            contributes = row_coefficient != 0.0
            scaled = child.weights[child_rows] * row_coefficient[:, None]
        else:
            contributes = np.full(count, coefficient != 0.0)
            scaled = child.weights[child_rows] * coefficient
        child_failures = np.where(contributes, child.failures[child_rows], NO_FAILURE)
        merged[target_rows] = first_failure(merged[target_rows], child_failures)
        if isinstance(target_rows, slice):
            weights[:, columns] += scaled
        else:
            weights[target_rows[:, None], columns[None, :]] += scaled
    weights[merged != NO_FAILURE] = 0.0
    return SessionAllocation(
        sessions=sessions, tickers=tuple(tickers), weights=weights, failures=merged
    )


def restricted(allocation: SessionAllocation, sessions: SessionIndex) -> SessionAllocation:
    """The rows of `allocation` at `sessions` (a subset of its sessions)."""
    rows = allocation.rows_of(sessions)
    return SessionAllocation(
        sessions=sessions,
        tickers=allocation.tickers,
        weights=allocation.weights[rows],
        failures=allocation.failures[rows],
    )
