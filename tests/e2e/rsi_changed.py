"""`python -m tests.e2e.rsi_changed ARGS...`: the `alchemiser` command (`alchemiser ARGS...`)
with one rule changed — the RSI formula of the indicator table answers 150 for every bar — so a
test can show that one change in the table reaches every command that decides."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from services.cli import main
from services.strategy.dsl import indicators


def always_overbought(closes: indicators.FloatArray, window: int) -> indicators.FloatArray:
    return np.full(closes.size, 150.0)


if __name__ == "__main__":
    table = dict(indicators.INDICATORS)
    table["rsi"] = dataclasses.replace(table["rsi"], formula=always_overbought)
    indicators.INDICATORS = table
    sys.argv = ["alchemiser", *sys.argv[1:]]
    main()
