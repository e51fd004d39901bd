"""Why a block could not be evaluated at a session, kept until the as-of date is known.

The evaluator works on many sessions at once and most failures (short history, a missing close)
hold for a whole range of them, so a failure is recorded once with the node and symbol at fault
and rendered into a `DslEvaluationError` only for the as-of dates that actually depend on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from services.strategy.dsl.ast import Span
from services.strategy.dsl.errors import DslEvaluationError


@dataclass(frozen=True, slots=True)
class Failure:
    """`describe(session)` words the problem as it stands at that session index."""

    span: Span
    symbol: str | None
    describe: Callable[[int], str]


class FailureTable:
    """The failures of one evaluation run; allocations refer to them by index."""

    def __init__(self) -> None:
        self._failures: list[Failure] = []
        self._restated: dict[tuple[int, int, str], int] = {}

    def add(self, failure: Failure) -> int:
        self._failures.append(failure)
        return len(self._failures) - 1

    def restated(self, code: int, session: int, context: str) -> int:
        """The failure `code` as it stood at an earlier `session` (inside a scoring window),
        prefixed with `context`, for the later as-of dates that depend on it."""
        key = (code, session, context)
        if key not in self._restated:
            failure = self._failures[code]
            message = f"{context}: {failure.describe(session)}"
            self._restated[key] = self.add(
                Failure(failure.span, failure.symbol, lambda _session: message)
            )
        return self._restated[key]

    def error(self, code: int, *, file: str, session: int, as_of: date) -> DslEvaluationError:
        failure = self._failures[code]
        return DslEvaluationError(
            file,
            failure.span.line,
            failure.span.column,
            failure.describe(session),
            strategy=file,
            symbol=failure.symbol,
            as_of=as_of,
        )
