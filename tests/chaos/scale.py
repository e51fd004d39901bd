"""How big a fault run is: `make chaos-ci` sets ALCHEMISER_CHAOS_SCALE=ci (bounded, for every
build), `make chaos` sets `full` (hundreds of runs, for a release)."""

from __future__ import annotations

import os
import random

SCALES = ("ci", "full")


def chaos_scale() -> str:
    scale = os.environ.get("ALCHEMISER_CHAOS_SCALE", "ci")
    if scale not in SCALES:
        raise ValueError(f"ALCHEMISER_CHAOS_SCALE={scale!r}: use one of {', '.join(SCALES)}")
    return scale


def runs(*, ci: int, full: int) -> int:
    """ALCHEMISER_CHAOS_RUNS overrides the scale's count (to replay a seed's first runs)."""
    override = os.environ.get("ALCHEMISER_CHAOS_RUNS")
    if override is not None:
        return int(override)
    return ci if chaos_scale() == "ci" else full


def chaos_seed() -> int:
    """ALCHEMISER_CHAOS_SEED replays a reported run's choices; otherwise a fresh seed."""
    given = os.environ.get("ALCHEMISER_CHAOS_SEED")
    return int(given) if given is not None else random.SystemRandom().randrange(2**32)
