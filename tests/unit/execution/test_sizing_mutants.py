"""Pre-flight checks at the edges mutation testing (`make mutation`) found unpinned."""

from __future__ import annotations

from decimal import Decimal

from services.execution.sizing import preflight
from tests.unit.execution.test_sizing import WHOLE_SHARES


def test_one_whole_share_of_a_whole_share_asset_passes_preflight() -> None:
    result = preflight("AAA", Decimal(1), WHOLE_SHARES)

    assert (result.valid, result.qty) == (True, Decimal(1))


def test_a_fraction_of_a_whole_share_asset_is_refused_saying_it_is_not_fractionable() -> None:
    result = preflight("AAA", Decimal("0.7"), WHOLE_SHARES)

    assert result.message == (
        "quantity 0.7 for AAA floors to 0 whole shares and AAA is not fractionable"
    )
