"""`alchemiser run` as `make run` runs it: no keys, no servers, a fresh directory — the sample
bars are generated, one workflow completes, the summary is printed and the email written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def run_command(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ALCHEMISER_")}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "run"],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_fresh_directory_runs_one_workflow_to_completion_and_writes_the_email(
    tmp_path: Path,
) -> None:
    first = run_command(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "generating the synthetic sample bar store" in first.stderr
    for section in ("COMPLETED", "Signals", "consolidated", "Plan", "Orders:", "Portfolio:"):
        assert section in first.stdout
    emails = sorted(path.suffix for path in (tmp_path / "out").iterdir())
    assert emails == [".html", ".txt"]
    # The generated bars are labelled where a user looks: the console and the email.
    assert "synthetic sample data" in first.stdout
    for email in (tmp_path / "out").iterdir():
        assert "synthetic sample data" in email.read_text(encoding="utf-8")
    assert (tmp_path / "data" / "alchemiser.db").exists()

    second = run_command(tmp_path)  # a new forced run on the same store and account
    assert second.returncode == 0, second.stderr[-3000:]
    assert "generating the synthetic sample" not in second.stderr
    assert len(list((tmp_path / "out").iterdir())) == 4
    # Already rebalanced by the first run: the second holds (nothing left above 1 % of PV).
    assert "Orders: 0/0 filled" in second.stdout
