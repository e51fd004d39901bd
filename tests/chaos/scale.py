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


def seeded(what: str) -> tuple[int, random.Random]:
    """The fault run's seed, printed with how to replay it, and the RNG drawn from it.
    ALCHEMISER_CHAOS_SEED replays a reported run's choices; otherwise a fresh seed."""
    given = os.environ.get("ALCHEMISER_CHAOS_SEED")
    seed = int(given) if given is not None else random.SystemRandom().randrange(2**32)
    print(f"\nchaos seed {seed} ({what}); replay with ALCHEMISER_CHAOS_SEED={seed}")
    return seed, random.Random(seed)
