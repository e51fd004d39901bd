"""Hostile strategy files and market data at scale (issue "Reliability and security", item 5a):
the properties `tests/integration/security/test_dsl_hostile.py` runs bounded in `make test`, with
many more examples — `make chaos-ci` (ALCHEMISER_CHAOS_SCALE=ci) or `make chaos` (full)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.marketdata.bars import BarSnapshot
from tests.integration.security.dsl_hostile import (
    HELD,
    blocks,
    check_evaluates_or_fails_with_a_position,
    hostile_bars,
    mutated_bundled,
)

pytestmark = pytest.mark.chaos

EXAMPLES = {"ci": 400, "full": 3000}.get(os.environ.get("ALCHEMISER_CHAOS_SCALE", "ci"), 400)
AT_SCALE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@AT_SCALE
@given(body=blocks(depth=4), bars=hostile_bars())
def test_deep_random_trees_over_hostile_bars_evaluate_or_fail_with_positions(
    body: str, bars: BarSnapshot
) -> None:
    source = f'(defsymphony "hostile" {{}}\n {body})'
    check_evaluates_or_fails_with_a_position(source, "hostile.clj", bars)


@AT_SCALE
@given(mutated=mutated_bundled(), data=st.data())
def test_mutated_bundled_files_over_hostile_bars_evaluate_or_fail_with_positions(
    mutated: tuple[str, str, tuple[str, ...]], data: st.DataObject
) -> None:
    source, file_name, held = mutated
    check_evaluates_or_fails_with_a_position(
        source, file_name, data.draw(hostile_bars(held or HELD))
    )
