"""The decision trace of one (strategy, as-of) evaluation
(docs/strategy-language.md, Decision trace).

The full trace explains every decision on the taken path — the `if` conditions with their
operand values, filter rankings, inverse-volatility weights and every indicator value read — so a
target weight can be followed back to its cause. The compact form is what travels in
`SignalGenerated`; it keeps only the decisions and is capped so one deep strategy cannot bloat an
event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

COMPACT_LIMIT_BYTES = 64 * 1024
TraceEntry = dict[str, Any]


def _compact_entry(entry: TraceEntry) -> TraceEntry | None:
    kind = entry["node"]
    if kind == "if":
        return {
            "if": entry["span"],
            "condition": entry["condition"],
            "left": entry["left"],
            "right": entry["right"],
            "branch": entry["branch"],
        }
    if kind == "filter":
        scores = {c["candidate"]: c.get("score") for c in entry["candidates"]}
        return {
            "filter": entry["span"],
            "winners": [{"candidate": s, "score": scores.get(s)} for s in entry["selected"]],
        }
    if kind == "weight-inverse-volatility":
        return {
            "inverse_volatility": entry["span"],
            "weights": {c["child"]: c["weight"] for c in entry["children"]},
        }
    return None


CHARS_PER_ELEMENT = 64
"""More than the keys, quotes, colons, commas and brackets `json.dumps` writes around the texts
and numbers of one compact decision, or of one of its winners or weights (56 at most, for an
`if`), or around the whole path."""
CHARS_PER_CHARACTER = 12
"""`json.dumps` (ASCII only) writes a character outside the BMP as two `\\uXXXX` escapes."""
CHARS_PER_NUMBER = 24
"""The longest float `json.dumps` writes, `-1.2345678901234567e-308`; `null` and `-Infinity` are
shorter."""


def _most_chars(decisions: list[TraceEntry], exact_texts: bool = False) -> int | None:
    """At least `len(json.dumps({"path": decisions, "truncated": 0}))`, counted from the lengths
    of the texts without encoding them: a backtest compacts ten thousand paths, nearly all far
    under the cap, and encoding each to measure it cost as much as walking it. With
    `exact_texts` each text is escaped as `json.dumps` writes it (a closer bound, for a path the
    first one puts over the cap: a backtest of ten files has 700 of them, all under it). None
    when a decision holds something other than texts and floats (a trace made by hand), which
    only encoding can measure."""
    elements = 1 + len(decisions)
    characters = texts = numbers = 0
    for decision in decisions:
        if "if" in decision:
            words: Iterable[Any] = (decision["if"], decision["condition"], decision["branch"])
            values: Iterable[Any] = (decision["left"], decision["right"])
        elif "filter" in decision:
            winners = decision["winners"]
            words = [decision["filter"], *[w["candidate"] for w in winners]]
            values = [w["score"] for w in winners]
            elements += len(winners)
        else:
            weights = decision["weights"]
            words = [decision["inverse_volatility"], *weights]
            values = weights.values()
            elements += len(weights)
        for word in words:
            if type(word) is not str:
                return None
            characters += len(encode_basestring_ascii(word)) if exact_texts else len(word)
            texts += 1
        for value in values:
            if value is not None and type(value) is not float:
                return None
            numbers += 1
    if exact_texts:
        return elements * CHARS_PER_ELEMENT + characters + numbers * CHARS_PER_NUMBER
    return (
        elements * CHARS_PER_ELEMENT
        + characters * CHARS_PER_CHARACTER
        + texts * 2
        + numbers * CHARS_PER_NUMBER
    )


@dataclass(frozen=True, slots=True, eq=False)
class DecisionTrace:
    """Entries in evaluation order; each is a JSON-ready dict whose `node` names its kind.

    The entries are walked from the evaluation's records each time they are read, not when the
    evaluation runs: a backtest evaluates every session and reads the paths of its rebalance
    sessions only, and holding every session's full trace at once would take gigabytes. `walk`
    takes whether to include the `indicator` entries: the compact form has no use for them, and
    they are most of the full trace.
    """

    walk: Callable[[bool], tuple[TraceEntry, ...]]

    @classmethod
    def of(cls, entries: Iterable[TraceEntry]) -> DecisionTrace:
        fixed = tuple(entries)
        decisions = tuple(entry for entry in fixed if entry["node"] != "indicator")
        return cls(lambda indicators: fixed if indicators else decisions)

    @property
    def entries(self) -> tuple[TraceEntry, ...]:
        return self.walk(True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DecisionTrace) and self.entries == other.entries

    __hash__ = None  # type: ignore[assignment]  # equal by content, which is not hashable

    def full(self) -> list[TraceEntry]:
        return list(self.entries)

    def compact(self, limit_bytes: int = COMPACT_LIMIT_BYTES) -> TraceEntry:
        """Branches, filter winners and inverse-volatility weights, at most `limit_bytes` of
        JSON; when cut, the tail is dropped and `truncated` says how many decisions are missing."""
        decisions = [c for c in map(_compact_entry, self.walk(False)) if c is not None]
        whole = {"path": decisions, "truncated": 0}
        most = _most_chars(decisions)
        if most is not None and most > limit_bytes:
            most = _most_chars(decisions, exact_texts=True)
        if (most is not None and most <= limit_bytes) or len(json.dumps(whole)) <= limit_bytes:
            return whole
        kept: list[TraceEntry] = []
        size = len(json.dumps({"path": [], "truncated": len(decisions)}))
        for decision in decisions:
            cost = len(json.dumps(decision)) + 2
            if size + cost > limit_bytes:
                break
            kept.append(decision)
            size += cost
        return {"path": kept, "truncated": len(decisions) - len(kept)}
