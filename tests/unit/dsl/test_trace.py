"""The compact decision path's cap holds for the costliest JSON a decision can spell: texts
outside the BMP and with control characters, and the longest floats."""

from __future__ import annotations

import json

import pytest

from services.strategy.dsl.trace import DecisionTrace, TraceEntry

LONGEST = -1.2345678901234567e-308
ODD = '\U0001f600"\\\n\x01é'
"""A character outside the BMP (two escapes), a quote, a backslash, a control character and one
outside ASCII: every kind of escape `json.dumps` writes."""
WORST: tuple[TraceEntry, ...] = (
    {
        "node": "if",
        "span": ODD * 3,
        "condition": ODD * 5,
        "left": LONGEST,
        "right": float("-inf"),
        "branch": ODD,
    },
    {
        "node": "filter",
        "span": ODD,
        "candidates": [{"candidate": ODD * 2, "score": LONGEST}, {"candidate": ODD}],
        "selected": [ODD * 2, ODD],
    },
    {
        "node": "weight-inverse-volatility",
        "span": ODD,
        "children": [{"child": ODD, "weight": LONGEST}, {"child": ODD * 4, "weight": LONGEST}],
    },
)


LONG_IF: TraceEntry = {**WORST[0], "condition": "\U0001f600" * 4000}
"""A decision whose JSON is nearly all escapes, 12 characters for each of its own."""


@pytest.mark.parametrize("entries", [WORST, WORST * 3, WORST * 40, (LONG_IF,), (LONG_IF,) * 2])
def test_a_path_exactly_at_the_cap_is_whole_and_one_byte_less_cuts_it(
    entries: tuple[TraceEntry, ...],
) -> None:
    trace = DecisionTrace.of(entries)
    whole = trace.compact(limit_bytes=10**6)
    assert whole["truncated"] == 0
    size = len(json.dumps(whole))
    assert trace.compact(limit_bytes=size) == whole
    assert trace.compact(limit_bytes=size - 1)["truncated"] >= 1


def test_a_hand_made_trace_with_whole_numbers_is_measured_by_encoding_it() -> None:
    entry = {"node": "if", "span": "1:1", "condition": "c", "left": 10**40, "right": 1}
    trace = DecisionTrace.of([{**entry, "branch": "then"}])
    size = len(json.dumps(trace.compact()))
    assert trace.compact(limit_bytes=size - 1)["truncated"] == 1
