"""Replaying a recorded workflow reproduces its plan and orders; other strategy files show how
their plan would have differed (shadow mode)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services.strategy.symphonies import bundled_config

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def alchemiser(
    cwd: Path, *args: str, settings: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ALCHEMISER_")}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=cwd,
        env={**env, **(settings or {}), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("recorded")
    result = alchemiser(home, "run")
    assert result.returncode == 0, result.stderr[-3000:]
    workflow_id = next((home / "out").iterdir()).stem
    return home, workflow_id


def test_replaying_a_recorded_workflow_reproduces_its_plan_and_orders(
    recorded: tuple[Path, str],
) -> None:
    home, workflow_id = recorded
    result = alchemiser(home, "replay", "--workflow", workflow_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical to the recording" in result.stdout
    redriven = re.search(
        r"re-driven as workflow (\S+) on simulated account (\S+): completed", result.stdout
    )
    assert redriven, result.stdout
    new_id, account = redriven.groups()
    assert new_id != workflow_id
    assert account.startswith("replay-")
    orders = json.loads(
        alchemiser(home, "broker", "orders", "--workflow", new_id, "--format", "json").stdout
    )
    recorded = json.loads(
        alchemiser(home, "broker", "orders", "--workflow", workflow_id, "--format", "json").stdout
    )
    assert sorted((o["symbol"], o["side"], o["qty"]) for o in orders) == sorted(
        (o["symbol"], o["side"], o["qty"]) for o in recorded
    )


def test_replaying_from_the_signal_reproduces_the_plan(recorded: tuple[Path, str]) -> None:
    home, workflow_id = recorded
    events = json.loads(
        alchemiser(home, "events", "--workflow", workflow_id, "--format", "json").stdout
    )
    assert [event["event_type"] for event in events][:3] == [
        "WorkflowStarted",
        "SignalGenerated",
        "RebalancePlanned",
    ]
    signal_id = events[1]["event_id"]
    result = alchemiser(home, "replay", "--workflow", workflow_id, "--from", signal_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "from SignalGenerated" in result.stdout


def test_shadow_mode_shows_how_other_strategies_would_have_traded(
    recorded: tuple[Path, str], tmp_path: Path
) -> None:
    home, workflow_id = recorded
    shutil.copy(bundled_config().parent / "test.clj", tmp_path / "test.clj")
    (tmp_path / "allocation.json").write_text(
        json.dumps({"files": ["test.clj"], "allocations": {"test.clj": 1}})
    )
    result = alchemiser(home, "replay", "--workflow", workflow_id, "--strategies", str(tmp_path))
    assert result.returncode == 1
    assert "BUY SPY" in result.stdout
    assert "replay only" in result.stdout and "recorded only" in result.stdout


def test_an_unknown_workflow_cannot_be_replayed(recorded: tuple[Path, str]) -> None:
    home, _ = recorded
    result = alchemiser(home, "replay", "--workflow", "no-such-workflow")
    assert result.returncode == 1
    assert "no events recorded" in result.stderr


FLIP = (
    '(defsymphony "flip" {{:asset-class "EQUITIES"}}\n'
    '  (if (> (rsi "SPY" {{:window 10}}) {threshold}) (asset "TLT") (asset "SPY")))\n'
)


def strategies_folder(folder: Path, threshold: int, config_name: str) -> Path:
    """One file, `flip.clj`: TLT while SPY's RSI is above `threshold`, else SPY."""
    folder.mkdir()
    (folder / "flip.clj").write_text(FLIP.format(threshold=threshold), encoding="utf-8")
    (folder / config_name).write_text(
        json.dumps({"files": ["flip.clj"], "allocations": {"flip.clj": 1}}), encoding="utf-8"
    )
    return folder / config_name


@pytest.fixture(scope="module")
def recorded_flip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A run on `flip.clj` with threshold 0: an RSI is above 0, so it bought TLT only."""
    home = tmp_path_factory.mktemp("recorded-flip")
    config = strategies_folder(home / "strategies", 0, "allocation.prod.json")
    result = alchemiser(home, "run", settings={"ALCHEMISER_STRATEGY_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "BUY   TLT" in result.stdout or "TLT     BUY" in result.stdout, result.stdout
    return home, next((home / "out").iterdir()).stem


def test_shadow_mode_sizes_new_symbols_from_the_bar_store_and_names_the_flipped_condition(
    recorded_flip: tuple[Path, str],
) -> None:
    """A raised threshold flips the condition: SPY, never quoted by the recording, is planned
    and sized at the bar store's close; the folder's config is `allocation.prod.json`."""
    home, workflow_id = recorded_flip
    shadow = strategies_folder(home / "shadow-101", 101, "allocation.prod.json").parent
    result = alchemiser(home, "replay", "--workflow", workflow_id, "--strategies", str(shadow))
    assert result.returncode == 1, result.stdout + result.stderr
    orders = next(line for line in result.stdout.splitlines() if line.startswith("orders:"))
    assert re.search(r"BUY \d+(\.\d+)? SPY", orders), result.stdout
    assert "SPY: no quote was recorded; priced at the bar store's close" in result.stdout
    assert re.search(r"flip\.clj: step 1 flipped: .*then branch.* now .*else branch", result.stdout)


def test_shadow_mode_names_the_configs_it_looked_for(
    recorded_flip: tuple[Path, str], tmp_path: Path
) -> None:
    home, workflow_id = recorded_flip
    shutil.copy(home / "strategies" / "flip.clj", tmp_path / "flip.clj")
    result = alchemiser(home, "replay", "--workflow", workflow_id, "--strategies", str(tmp_path))
    assert result.returncode == 1
    assert "allocation.json" in result.stderr and "allocation.prod.json" in result.stderr
