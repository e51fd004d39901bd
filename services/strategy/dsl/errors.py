"""Errors of the symphony language.

One hierarchy so callers can catch every strategy-file problem with `DslError` and still tell a
typo (`DslSyntaxError`), a malformed tree (`DslStaticError`) and a data problem
(`DslEvaluationError`) apart. Every error carries the file and the 1-based position of the thing
at fault, because the user fixes these by editing the file.
"""

from __future__ import annotations

from datetime import date


class DslError(Exception):
    """A strategy file cannot be used; `str()` is `file:line:col: message`."""

    def __init__(self, file: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{file}:{line}:{column}: {message}")
        self.file = file
        self.line = line
        self.column = column
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        # Errors cross process boundaries (parallel evaluation); keep the structured fields.
        return (type(self), (self.file, self.line, self.column, self.message))


class DslSyntaxError(DslError):
    """The text is not a well-formed S-expression (reader error)."""


class DslStaticError(DslError):
    """The forms are well formed but not a valid symphony (arity, types, names, options)."""


class DslEvaluationError(DslError):
    """Evaluation against market data failed (missing or short history, NaN, zero volatility)."""

    def __init__(
        self,
        file: str,
        line: int,
        column: int,
        message: str,
        *,
        strategy: str | None = None,
        symbol: str | None = None,
        as_of: date | None = None,
    ) -> None:
        super().__init__(file, line, column, message)
        self.strategy = strategy
        self.symbol = symbol
        self.as_of = as_of

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_evaluation_error,
            (
                self.file,
                self.line,
                self.column,
                self.message,
                self.strategy,
                self.symbol,
                self.as_of,
            ),
        )


def _rebuild_evaluation_error(
    file: str,
    line: int,
    column: int,
    message: str,
    strategy: str | None,
    symbol: str | None,
    as_of: date | None,
) -> DslEvaluationError:
    return DslEvaluationError(
        file, line, column, message, strategy=strategy, symbol=symbol, as_of=as_of
    )
