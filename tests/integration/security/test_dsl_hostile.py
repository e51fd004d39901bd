"""The DSL under hostile strategy files and market data, bounded for `make test` (the same
properties run bigger in `tests/chaos/test_hostile_input.py`): only positioned `DslError`s."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.marketdata.bars import BarSnapshot
from tests.integration.security.dsl_hostile import (
    HELD,
    MISSING,
    blocks,
    check_evaluates_or_fails_with_a_position,
    hostile_bars,
    mutated_bundled,
)

BOUNDED = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@BOUNDED
@given(body=blocks(), bars=hostile_bars())
def test_random_trees_with_hostile_windows_and_tickers_evaluate_or_fail_with_positions(
    body: str, bars: BarSnapshot
) -> None:
    source = f'(defsymphony "hostile" {{}}\n {body})'
    check_evaluates_or_fails_with_a_position(source, "hostile.clj", bars)


@BOUNDED
@given(mutated=mutated_bundled(), data=st.data())
def test_bundled_files_with_mutated_windows_and_tickers_evaluate_or_fail_with_positions(
    mutated: tuple[str, str, tuple[str, ...]], data: st.DataObject
) -> None:
    source, file_name, held = mutated
    bars = data.draw(hostile_bars(held or HELD))
    assert MISSING not in held
    check_evaluates_or_fails_with_a_position(source, file_name, bars)
