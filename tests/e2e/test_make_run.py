"""The README's first command on a fresh clone: `make run` installs everything from the repo's
own files and runs the embedded system — no keys, no servers — to a completed workflow."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TEN_MINUTES_S = 600


def test_make_run_on_a_fresh_clone_completes_a_workflow_and_writes_the_email(
    tmp_path: Path,
) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ALCHEMISER_", "VIRTUAL_ENV", "PYTHON"))
    }
    env["PYTHON"] = sys.executable  # the interpreter the Makefile builds .venv from
    started = time.monotonic()
    result = subprocess.run(
        ["make", "run"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=TEN_MINUTES_S,
    )
    elapsed_s = time.monotonic() - started
    print(f"make run on a fresh clone, installation included: {elapsed_s:.0f} s")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "COMPLETED" in result.stdout
    for section in ("Signals", "Plan", "Orders:", "Portfolio:"):
        assert section in result.stdout
    assert sorted(path.suffix for path in (clone / "out").iterdir()) == [".html", ".txt"]
    assert (clone / ".venv" / "bin" / "alchemiser").exists()
