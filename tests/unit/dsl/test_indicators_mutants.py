"""Indicator edges mutation testing (`make mutation`) found unpinned."""

from __future__ import annotations

import numpy as np
import pytest

from services.strategy.dsl.indicators import (
    GROUP_METRICS,
    group_metric_series,
    indicator_series,
    needs,
)


@pytest.mark.parametrize("indicator", sorted(GROUP_METRICS))
def test_a_return_series_only_as_long_as_the_window_scores_nothing_yet(indicator: str) -> None:
    returns = np.array([np.nan, 0.01, -0.02])

    assert np.isnan(group_metric_series(indicator, returns, 3)).all()


@pytest.mark.parametrize("window", [True, 2.5], ids=["boolean", "fraction"])
def test_a_window_that_is_not_an_integer_is_refused(window: object) -> None:
    with pytest.raises(ValueError, match="rsi needs an integer window"):
        needs("rsi", window)  # type: ignore[arg-type]


def test_a_series_that_is_not_one_dimensional_is_refused_naming_its_shape() -> None:
    table = np.ones((2, 3))

    with pytest.raises(ValueError, match=r"closes must be one-dimensional, got shape \(2, 3\)"):
        indicator_series("rsi", table, 2)
    with pytest.raises(ValueError, match=r"returns must be one-dimensional, got shape \(2, 3\)"):
        group_metric_series("rsi", table, 2)
