"""Which sessions a rebalance mode trades on by the calendar, and when `none` trades between."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.backtest.rebalance_schedule import RebalanceMode, RebalanceSchedule

# Around New Year 2024 and Easter: 2024-01-01 (a Monday) and 2024-03-29 (Good Friday) are
# holidays, so the year, the week and the quarter open on a Tuesday.
SESSIONS = [
    date(2023, 12, 28),
    date(2023, 12, 29),
    date(2024, 1, 2),
    date(2024, 1, 3),
    date(2024, 1, 31),
    date(2024, 2, 1),
    date(2024, 3, 27),
    date(2024, 3, 28),
    date(2024, 4, 1),
    date(2024, 4, 2),
    date(2024, 4, 8),
]


@pytest.mark.parametrize(
    ("mode", "opening"),
    [
        ("daily", SESSIONS),
        (
            "weekly",
            [
                date(2023, 12, 28),
                date(2024, 1, 2),
                date(2024, 1, 31),
                date(2024, 3, 27),
                date(2024, 4, 1),
                date(2024, 4, 8),
            ],
        ),
        (
            "monthly",
            [
                date(2023, 12, 28),
                date(2024, 1, 2),
                date(2024, 2, 1),
                date(2024, 3, 27),
                date(2024, 4, 1),
            ],
        ),
        ("quarterly", [date(2023, 12, 28), date(2024, 1, 2), date(2024, 4, 1)]),
        ("yearly", [date(2023, 12, 28), date(2024, 1, 2)]),
        ("none", []),
    ],
)
def test_a_calendar_mode_trades_on_the_first_session_of_each_period(
    mode: RebalanceMode, opening: list[date]
) -> None:
    flags = RebalanceSchedule(mode).opening_sessions(SESSIONS)

    assert [day for day, flag in zip(SESSIONS, flags, strict=True) if flag] == opening


TARGET = {"AAA": Decimal("0.5"), "BBB": Decimal("0.5")}
FULLY_INVESTED = Decimal(1)


@pytest.mark.parametrize(
    ("corridor", "target", "held", "drifted"),
    [
        (None, TARGET, {"AAA": Decimal("0.8"), "BBB": Decimal("0.2")}, False),
        (None, {"AAA": Decimal(1)}, {"AAA": Decimal("0.5"), "BBB": Decimal("0.5")}, True),
        ("0.05", TARGET, {"AAA": Decimal("0.54"), "BBB": Decimal("0.46")}, False),
        ("0.05", TARGET, {"AAA": Decimal("0.56"), "BBB": Decimal("0.44")}, True),
        ("0.05", TARGET, {"AAA": Decimal("0.55"), "BBB": Decimal("0.45")}, False),
    ],
    ids=["no-corridor-holds", "branch-switch", "inside-band", "outside-band", "on-the-edge"],
)
def test_none_trades_on_a_branch_switch_or_a_weight_outside_the_corridor(
    corridor: str | None,
    target: dict[str, Decimal],
    held: dict[str, Decimal],
    drifted: bool,
) -> None:
    schedule = RebalanceSchedule("none", None if corridor is None else Decimal(corridor))

    assert (
        schedule.drifted(
            target=target,
            traded_symbols=frozenset({"AAA", "BBB"}),
            held_weights=held,
            invested_fraction=FULLY_INVESTED,
        )
        is drifted
    )


def test_the_corridor_is_centred_on_the_target_less_the_cash_reserve() -> None:
    schedule = RebalanceSchedule("none", Decimal("0.01"))
    after_rebalance = {"AAA": Decimal("0.495"), "BBB": Decimal("0.495")}

    assert not schedule.drifted(
        target=TARGET,
        traded_symbols=frozenset(TARGET),
        held_weights=after_rebalance,
        invested_fraction=Decimal("0.99"),
    )


def test_a_corridor_belongs_to_none_only() -> None:
    with pytest.raises(ValueError, match="--corridor applies to --rebalance none only"):
        RebalanceSchedule("monthly", Decimal("0.05"))
