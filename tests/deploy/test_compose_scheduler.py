"""The compose scheduler's loop, run by /bin/sh with stand-ins for `date`, `sleep` and
`alchemiser`: it refreshes the bars and triggers once at 12:45 and once at 15:45 on weekdays, and
its TZ rule is New York time."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.deploy.compose_file import application_services, load_compose

# %u-%H:%M as the loop reads it, one per iteration: a Monday 12:45 seen twice, a Saturday, a
# Friday 15:45 and a Sunday.
MINUTES = ["1-12:44", "1-12:45", "1-12:45", "1-12:46", "6-12:45", "5-15:45", "5-15:45", "7-15:45"]


def stand_in(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)


def test_scheduler_refreshes_bars_then_triggers_once_per_weekday_close_slot(
    tmp_path: Path,
) -> None:
    scheduler = application_services(load_compose())["scheduler"]
    assert scheduler.definition["entrypoint"] == ["/bin/sh", "-c"]
    (script,) = scheduler.command
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "minutes").write_text("\n".join(MINUTES) + "\n", encoding="utf-8")
    stand_in(
        bin_dir,
        "date",
        f"n=$(cat {tmp_path}/count 2>/dev/null || echo 0)\n"
        f'sed -n "$((n + 1))p" {tmp_path}/minutes\n',
    )
    stand_in(
        bin_dir,
        "sleep",
        f"n=$(cat {tmp_path}/count 2>/dev/null || echo 0)\necho $((n + 1)) > {tmp_path}/count\n"
        f'[ "$((n + 1))" -ge {len(MINUTES)} ] && kill -TERM "$PPID"\nexit 0\n',
    )
    stand_in(bin_dir, "alchemiser", f'echo "$*" >> {tmp_path}/calls\n')
    env = {**scheduler.environment, "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    subprocess.run(["/bin/sh", "-c", script], env=env, timeout=30, check=False)

    calls = (tmp_path / "calls").read_text(encoding="utf-8").splitlines()
    assert calls == ["data sample", "trigger", "data sample", "trigger"]


@pytest.mark.parametrize(
    ("utc", "new_york"),
    [
        (datetime(2026, 7, 15, 16, 45, tzinfo=UTC), "12:45"),
        (datetime(2026, 1, 15, 20, 45, tzinfo=UTC), "15:45"),
        (datetime(2026, 3, 9, 16, 45, tzinfo=UTC), "12:45"),
        (datetime(2026, 11, 2, 17, 45, tzinfo=UTC), "12:45"),
    ],
)
def test_scheduler_tz_rule_is_new_york_time_across_daylight_saving(
    utc: datetime, new_york: str
) -> None:
    """The image may ship without zoneinfo files, so the loop uses the POSIX rule; it must agree
    with the tz database on both sides of each switch."""
    rule = application_services(load_compose())["scheduler"].environment["TZ"]
    shown = subprocess.run(
        ["date", "-d", f"@{int(utc.timestamp())}", "+%H:%M"],
        env={"TZ": rule, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert shown == new_york == utc.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M")
