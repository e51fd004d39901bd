"""When a backtest trades to its targets (`--rebalance`, `--corridor`).

The start session always invests. `daily` trades every session (live's rule). The calendar modes
trade on the first session of each ISO week, month, quarter or year, found from the sessions'
calendar dates, so a period whose first weekday is a holiday opens on its first session. `none`
trades only when the set of symbols with a non-zero target changes (a branch switch) or, with a
corridor, when a holding's weight leaves its target ± the corridor; then everything is traded
back to target, as Composer's threshold rebalancing does. The planner's minimum trade applies on
top of every mode, as live.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

RebalanceMode = Literal["daily", "weekly", "monthly", "quarterly", "yearly", "none"]
REBALANCE_MODES: tuple[RebalanceMode, ...] = (
    "daily",
    "weekly",
    "monthly",
    "quarterly",
    "yearly",
    "none",
)

CALENDAR_PERIODS: Mapping[str, Callable[[date], Hashable]] = {
    "weekly": lambda day: day.isocalendar()[:2],
    "monthly": lambda day: (day.year, day.month),
    "quarterly": lambda day: (day.year, (day.month - 1) // 3),
    "yearly": lambda day: day.year,
}


@dataclass(frozen=True)
class RebalanceSchedule:
    mode: RebalanceMode
    corridor: Decimal | None = None
    """Absolute weight band around each target (0.05 = 5 percentage points); `none` only."""

    def __post_init__(self) -> None:
        if self.corridor is not None and self.mode != "none":
            raise ValueError(
                f"--corridor applies to --rebalance none only, not to --rebalance {self.mode}"
            )
        if self.corridor is not None and not Decimal(0) < self.corridor < 1:
            raise ValueError(f"--corridor {self.corridor}: give a weight band in (0, 1)")

    def opening_sessions(self, sessions: Sequence[date]) -> list[bool]:
        """Per session, whether the mode trades there by the calendar: every session for
        `daily`, the first session of each period for a calendar mode, none for `none`."""
        if self.mode == "daily":
            return [True] * len(sessions)
        period = CALENDAR_PERIODS.get(self.mode)
        if period is None:
            return [False] * len(sessions)
        keys = [period(day) for day in sessions]
        return [index == 0 or keys[index] != keys[index - 1] for index in range(len(keys))]

    def drifted(
        self,
        *,
        target: Mapping[str, Decimal],
        traded_symbols: frozenset[str],
        held_weights: Mapping[str, Decimal],
        invested_fraction: Decimal,
    ) -> bool:
        """For `none`: whether the branch switched or a holding left its corridor since the
        last rebalance (never, for the other modes).

        `traded_symbols` are the symbols with a non-zero target at the last rebalance;
        `held_weights` each holding's value over the portfolio value before trading;
        `invested_fraction` what the planner invests of the portfolio value (1 − cash reserve),
        so a holding right after a rebalance sits at the centre of its corridor.
        """
        if self.mode != "none":
            return False
        if frozenset(symbol for symbol, weight in target.items() if weight > 0) != traded_symbols:
            return True
        if self.corridor is None:
            return False
        zero = Decimal(0)
        return any(
            abs(held_weights.get(symbol, zero) - target.get(symbol, zero) * invested_fraction)
            > self.corridor
            for symbol in set(target) | set(held_weights)
        )
