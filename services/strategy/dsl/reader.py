"""The reader: symphony source text → forms (lists, vectors, maps, atoms) with source spans.

The reader knows nothing about operators; it only enforces the lexical syntax and bracket structure
(docs/strategy-language.md, Tokens / Reader grammar) and reports every problem as a `DslSyntaxError`
at `line:col`. Bundled files reach 2.2 MB, so lexing is one compiled regex scanned over the whole
text, and line numbers are tracked incrementally from the newlines inside discarded trivia and
strings (no per-character Python loop).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeAlias

from services.strategy.dsl.ast import Span
from services.strategy.dsl.errors import DslSyntaxError

MAX_SOURCE_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 250


@dataclass(frozen=True, slots=True)
class String:
    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class Number:
    """An exact decimal literal; `text` is the token as written (for traces and messages)."""

    value: Decimal
    text: str
    span: Span

    @property
    def is_integer(self) -> bool:
        return "." not in self.text


@dataclass(frozen=True, slots=True)
class Keyword:
    """`:window` → name `window` (without the colon)."""

    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Nil:
    span: Span


@dataclass(frozen=True, slots=True)
class List:
    items: tuple[Form, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Vector:
    items: tuple[Form, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Map:
    """Key/value pairs in source order; keys are unique (a keyword ≡ the string of its name)."""

    pairs: tuple[tuple[Form, Form], ...]
    span: Span


Form: TypeAlias = List | Vector | Map | String | Number | Keyword | Symbol | Bool | Nil

_BOUNDARY_TAIL = r"""[^\s,;()\[\]{}]*"""
# Each match is the trivia (whitespace, commas, comments) before a token, then the token; the
# last alternatives match any other character (a lexical error) and the end of the text.
_TOKEN = re.compile(
    r"(?:[\s,]+|;[^\n]*)*(?:"
    + "|".join(
        (
            r"(?P<open>[(\[{])",
            r"(?P<close>[)\]}])",
            r'(?P<string>"[^"\\]*(?:\\.[^"\\]*)*")',
            r'(?P<unterminated>")',
            r"(?P<number>-?[0-9]" + _BOUNDARY_TAIL + ")",
            r"(?P<keyword>:[A-Za-z_]" + _BOUNDARY_TAIL + ")",
            r"(?P<symbol>[A-Za-z_><=!?+*/\-][A-Za-z0-9_><=!?+*/\-]*)",
            r"(?P<bad>.)",
            r"(?P<end>\Z)",
        )
    )
    + ")",
    re.DOTALL,
)
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_KEYWORD = re.compile(r":[A-Za-z_][A-Za-z0-9_-]*")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
_CLOSER_OF = {"(": ")", "[": "]", "{": "}"}
_KIND_OF = {"(": "list", "[": "vector", "{": "map"}
_LITERALS = {"true", "false", "nil"}


def _describe_character(char: str) -> str:
    """Show a character so that invisible or confusable ones are still identifiable."""
    if char.isprintable() and not char.isspace() and char != "`":
        return f"`{char}`"
    return f"U+{ord(char):04X}"


class _Frame:
    """An open bracket waiting for its closer."""

    __slots__ = ("items", "opener", "span")

    def __init__(self, opener: str, span: Span) -> None:
        self.opener = opener
        self.span = span
        self.items: list[Form] = []


_OPEN = _TOKEN.groupindex["open"]
_CLOSE = _TOKEN.groupindex["close"]
_STRING = _TOKEN.groupindex["string"]
_NUMBER_TOKEN = _TOKEN.groupindex["number"]
_KEYWORD_TOKEN = _TOKEN.groupindex["keyword"]
_SYMBOL_TOKEN = _TOKEN.groupindex["symbol"]
_BAD = _TOKEN.groupindex["bad"]
_END = _TOKEN.groupindex["end"]


class _Reader:
    __slots__ = ("file_name", "source")

    def __init__(self, source: str, file_name: str) -> None:
        self.source = source
        self.file_name = file_name

    def error(self, span: Span, message: str) -> DslSyntaxError:
        return DslSyntaxError(self.file_name, span.line, span.column, message)

    def span_at(self, offset: int) -> Span:
        """Position of any offset, counted from the start (only for errors, which are rare)."""
        line_start = self.source.rfind("\n", 0, offset) + 1
        return Span(self.source.count("\n", 0, offset) + 1, offset - line_start + 1)

    def read(self) -> Form:
        source = self.source
        stack: list[_Frame] = []
        top: Form | None = None
        line = 1
        line_start = 0
        for match in _TOKEN.finditer(source):
            index = match.lastindex or _END  # every alternative is a group, so never None
            start = match.start(index)
            trivia_start = match.start()
            if start != trivia_start and (newlines := source.count("\n", trivia_start, start)):
                line += newlines
                line_start = source.rfind("\n", trivia_start, start) + 1
            if index == _CLOSE:
                closed = self.close(stack, match.group(index), start)
                if stack:
                    stack[-1].items.append(closed)
                else:
                    top = closed
                continue
            if index == _END:
                break
            span = Span(line, start - line_start + 1)
            if index == _BAD:
                raise self.error(span, self.bad_character_message(match.group(index)))
            if top is not None:
                raise self.error(
                    span,
                    "unexpected form after the top-level form; a file holds exactly one form,"
                    " (defsymphony ...)",
                )
            if index == _OPEN:
                if len(stack) >= MAX_DEPTH:
                    raise self.error(
                        span, f"nesting deeper than {MAX_DEPTH} levels; flatten the strategy"
                    )
                stack.append(_Frame(match.group(index), span))
                continue
            if index == _STRING:
                end = match.end()
                atom: Form = String(self.unescape(match.group(index), start), span)
                if newlines := source.count("\n", start, end):
                    line += newlines
                    line_start = source.rfind("\n", start, end) + 1
            else:
                atom = self.atom(index, match.group(index), span)
            if stack:
                stack[-1].items.append(atom)
            else:
                top = atom
        if stack:
            frame = stack[-1]
            raise self.error(
                self.span_at(len(source)),
                f"expected '{_CLOSER_OF[frame.opener]}' to close the {_KIND_OF[frame.opener]}"
                f" opened at {frame.span.line}:{frame.span.column}, found end of file",
            )
        if top is None:
            raise self.error(
                Span(1, 1),
                'empty file: expected one form, (defsymphony "name" {options} block)',
            )
        return top

    def close(self, stack: list[_Frame], closer: str, offset: int) -> Form:
        if not stack:
            raise self.error(self.span_at(offset), f"`{closer}` has no matching opening bracket")
        frame = stack.pop()
        if _CLOSER_OF[frame.opener] != closer:
            raise self.error(
                self.span_at(offset),
                f"`{closer}` does not close `{frame.opener}` opened at"
                f" {frame.span.line}:{frame.span.column} (expected `{_CLOSER_OF[frame.opener]}`)",
            )
        if frame.opener == "(":
            return List(tuple(frame.items), frame.span)
        if frame.opener == "[":
            return Vector(tuple(frame.items), frame.span)
        return self.map(frame, offset)

    def map(self, frame: _Frame, closer_offset: int) -> Map:
        items = frame.items
        if len(items) % 2:
            raise self.error(
                self.span_at(closer_offset),
                f"map needs an even number of forms (key value pairs), got {len(items)};"
                f" the map opened at {frame.span.line}:{frame.span.column}",
            )
        pairs = tuple(zip(items[::2], items[1::2], strict=True))
        seen: dict[object, Span] = {}
        for key, _ in pairs:
            identity = _map_key_identity(key)
            if identity is None:
                continue
            if identity in seen:
                first = seen[identity]
                raise self.error(
                    key.span,
                    f"duplicate map key {_describe_key(key)}; first given at"
                    f" {first.line}:{first.column}",
                )
            seen[identity] = key.span
        return Map(pairs, frame.span)

    def atom(self, index: int, text: str, span: Span) -> Form:
        if index == _NUMBER_TOKEN:
            if not _NUMBER.fullmatch(text):
                raise self.error(
                    span,
                    f"invalid number `{text}`; numbers are written like 10, -2 or 0.75"
                    " (no exponents, no leading or trailing dot)",
                )
            return Number(Decimal(text), text, span)
        if index == _KEYWORD_TOKEN:
            if not _KEYWORD.fullmatch(text):
                raise self.error(
                    span,
                    f"invalid keyword `{text}`; keywords are `:` then letters, digits, `_`, `-`",
                )
            return Keyword(text[1:], span)
        if index == _SYMBOL_TOKEN:
            if text in _LITERALS:
                return Nil(span) if text == "nil" else Bool(text == "true", span)
            return Symbol(text, span)
        raise self.error(span, 'unterminated string: no closing `"` before the end of the file')

    def unescape(self, token: str, offset: int) -> str:
        body = token[1:-1]
        if "\\" not in body:
            return body

        def decode(escape: re.Match[str]) -> str:
            char = escape.group(1)
            if char in _ESCAPES:
                return _ESCAPES[char]
            raise self.error(
                self.span_at(offset + 1 + escape.start()),
                f'invalid escape `\\{char}` in string; allowed: \\" \\\\ \\n \\t \\r',
            )

        return _ESCAPE.sub(decode, body)

    @staticmethod
    def bad_character_message(char: str) -> str:
        message = f"unexpected character {_describe_character(char)}"
        if char == ".":
            return message + ' (tickers with dots must be strings, e.g. "BRK.B")'
        if char == "#":
            return message + " (`#` forms such as sets and `#_` discards are not supported)"
        return message


def _map_key_identity(key: Form) -> object | None:
    """What makes two map keys the same: `:window` ≡ `"window"`; composite keys never clash."""
    if isinstance(key, Keyword | String):
        return ("name", key.name if isinstance(key, Keyword) else key.value)
    if isinstance(key, Number):
        return ("number", key.value)
    if isinstance(key, Bool):
        return ("bool", key.value)
    if isinstance(key, Nil):
        return ("nil",)
    return None


def _describe_key(key: Form) -> str:
    if isinstance(key, Keyword):
        return f"`:{key.name}`"
    if isinstance(key, String):
        return f'"{key.value}"'
    if isinstance(key, Number):
        return key.text
    if isinstance(key, Bool):
        return "true" if key.value else "false"
    return "nil"


def read_form(source: str, file_name: str) -> Form:
    """Read the single top-level form of a symphony file.

    Raises `DslSyntaxError` (at `line:col`) for any lexical or structural problem, and for a
    source over the 10 MiB limit.
    """
    if len(source) * 4 > MAX_SOURCE_BYTES:
        size = len(source.encode("utf-8", "surrogatepass"))
        if size > MAX_SOURCE_BYTES:
            raise DslSyntaxError(
                file_name,
                1,
                1,
                f"file is {size} bytes; the limit is 10 MiB ({MAX_SOURCE_BYTES} bytes)",
            )
    return _Reader(source, file_name).read()
