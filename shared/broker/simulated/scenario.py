"""Per-test departures from the plain simulated world (trading spec §6.2): assets that cannot
be traded or bought in fractions, misshapen quotes, limits that rest, fills that race a cancel.

A `Scenario` belongs to one broker instance and is not stored: tests and chaos runs set it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class QuoteShape(StrEnum):
    """How a symbol's quote departs from the derived bid/ask."""

    STALE = "stale"
    """Timestamped `stale_age` before the simulated now."""
    ONE_SIDED = "one_sided"
    """No bid: bid and bid size are zero."""
    INVERTED = "inverted"
    """Bid above ask."""
    ZERO = "zero"
    """Bid and ask both zero."""
    WIDE = "wide"
    """A 20 % spread around the last price (over the 10 % that marks a quote suspicious)."""
    MISSING = "missing"
    """No quote at all."""


@dataclass
class Scenario:
    non_tradable: set[str] = field(default_factory=set)
    non_fractionable: set[str] = field(default_factory=set)
    quote_shapes: dict[str, QuoteShape] = field(default_factory=dict)
    rest_passive_limits: bool = False
    """A limit that does not cross the quote stays working instead of filling at its price."""
    fill_before_cancel: bool = False
    """A working order fills completely just before a cancel reaches it ("already filled")."""
