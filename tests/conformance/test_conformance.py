"""Every expected allocation of the public conformance data, reproduced by the real CLI.

One `alchemiser evaluate` process per strategy with all of its dates, as other tools call it;
comparison per the data's README: zero weights dropped, same symbols, weights within 1e−6.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "conformance" / "data"
SYMPHONIES = REPO / "services" / "strategy" / "symphonies"
TOLERANCE = 1e-6


def expected_by_strategy() -> dict[str, list[dict[str, object]]]:
    rows: dict[str, list[dict[str, object]]] = defaultdict(list)
    with (DATA / "expected-public.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            rows[record["strategy"]].append(record)
    return dict(rows)


EXPECTED = expected_by_strategy()


def matches(actual: dict[str, float], expected: dict[str, float]) -> bool:
    actual = {t: w for t, w in actual.items() if w != 0}
    expected = {t: w for t, w in expected.items() if w != 0}
    return set(actual) == set(expected) and all(
        abs(actual[t] - expected[t]) <= TOLERANCE for t in expected
    )


def test_conformance_data_has_280_lines_over_7_strategies() -> None:
    assert sum(len(rows) for rows in EXPECTED.values()) == 280
    assert len(EXPECTED) == 7


@pytest.mark.parametrize("strategy", sorted(EXPECTED))
def test_cli_reproduces_every_expected_allocation(strategy: str, tmp_path: Path) -> None:
    rows = EXPECTED[strategy]
    dates_file = tmp_path / "dates.txt"
    dates_file.write_text("".join(f"{row['as_of']}\n" for row in rows), encoding="utf-8")
    environment = {
        **os.environ,
        "ALCHEMISER_DATA_DIR": str(tmp_path),
        "ALCHEMISER_CACHE_DIR": str(tmp_path / "cache"),
    }
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "evaluate",
            str(SYMPHONIES / strategy),
            "--bars",
            str(DATA / "bars-public.parquet"),
            "--dates-file",
            str(dates_file),
            "--format",
            "jsonl",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environment,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [(line["strategy"], line["as_of"]) for line in lines] == [
        (row["strategy"], row["as_of"]) for row in rows
    ]
    mismatched = [
        (row["as_of"], row["weights"], line["weights"])
        for row, line in zip(rows, lines, strict=True)
        if not matches(line["weights"], row["weights"])  # type: ignore[arg-type]
    ]
    print(f"{strategy}: {len(rows) - len(mismatched)}/{len(rows)} allocations matched")
    assert mismatched == []
