"""A strategy file as an outline for the Strategies page: the forms that lead to an asset, each
with its own words (an `if`'s condition, a group's name, a filter's ranking) and its
`line:col`, the position a decision path's steps name (docs/strategy-language.md, Reader grammar).

A display of the file, not the language's reader (`services/strategy/dsl/reader.py`, which the
web service must not import): it only nests brackets, skips strings and comments, and keeps the
source text of each form's other parts. The strategy service has checked the file.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|;[^\n]*|[(\[{]|[)\]}]|[^\s()\[\]{}";,]+')
LABEL_CHARS = 160
FULL_OUTLINE_FORMS = 1500
"""A bigger file shows in full only the forms along its last decision path."""


@dataclass
class Form:
    head: str
    line: int
    column: int
    start: int
    end: int = 0
    words: list[tuple[int, int]] = field(default_factory=list)
    """(start, end) offsets of the parts that are not outline forms."""
    children: list[Form] = field(default_factory=list)
    leads_to_asset: bool = False
    label: str = ""
    on_path: bool = False
    """On the last decision path, or holding a form that is."""
    taken: bool = False
    """A step of the last decision path itself."""

    @property
    def position(self) -> str:
        return f"{self.line}:{self.column}"


@dataclass(frozen=True)
class Outline:
    roots: list[Form]
    forms: int
    full: bool


def read_outline(path: Path, path_positions: set[str]) -> Outline:
    """The outline of the file at `path`, marking the forms at `path_positions` (`line:col`)."""
    source = path.read_text(encoding="utf-8")
    line_starts = [0, *(match.end() for match in re.finditer("\n", source))]
    stack: list[tuple[str, Form | None, int]] = []
    roots: list[Form] = []
    count = 0
    for match in _TOKEN.finditer(source):
        token = match.group()
        if token[0] == ";":
            continue
        if token in "([{":
            form = None
            if token == "(":
                line = bisect_right(line_starts, match.start())
                form = Form("", line, match.start() - line_starts[line - 1] + 1, match.start())
            stack.append((token, form, match.start()))
            continue
        if token in ")]}":
            if not stack:
                continue
            _, form, start = stack.pop()
            owner = _owner(stack)
            if form is not None:
                form.end = match.end()
                form.leads_to_asset |= form.head == "asset"
                if form.leads_to_asset:
                    count += 1
                    form.label = _label(source, form)
                    form.on_path = form.taken = form.position in path_positions
                    form.on_path |= any(child.on_path for child in form.children)
                    (owner.children if owner else roots).append(form)
                elif owner is not None:
                    owner.words.append((form.start, form.end))
                if owner is not None:
                    owner.leads_to_asset |= form.leads_to_asset
            elif owner is not None and not _holds_forms(owner, start):
                owner.words.append((start, match.end()))
            continue
        owner = _owner(stack)
        if owner is not None and stack[-1][1] is owner and not owner.head:
            owner.head = token
        elif owner is not None:
            owner.words.append((match.start(), match.end()))
    return Outline(roots, count, count <= FULL_OUTLINE_FORMS)


def _owner(stack: list[tuple[str, Form | None, int]]) -> Form | None:
    """The innermost open form (vectors and maps belong to it)."""
    return next((form for _, form, _ in reversed(stack) if form is not None), None)


def _holds_forms(owner: Form, start: int) -> bool:
    """Whether the vector or map that began at `start` held outline forms (then it is no word)."""
    return any(child.start > start for child in owner.children)


def _label(source: str, form: Form) -> str:
    """The form's head and its words, whitespace folded, cut to LABEL_CHARS."""
    words = " ".join(" ".join(source[a:b].split()) for a, b in sorted(form.words))
    text = f"{form.head} {words}".strip()
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"
