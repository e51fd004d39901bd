"""A decision rule lives in one place: changing it changes what the strategy service decides,
what `alchemiser replay` re-derives and what `alchemiser evaluate --dates-file` prints, because
all three call the same decision functions.

The rule changed here is the RSI formula in the indicator table (`tests/e2e/rsi_changed.py`
runs the command with it changed); the strategy file below picks BIL when RSI is above 100,
which the real formula never gives, and SPY otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RULE = """(defsymphony "one rule" {:rebalance-frequency :daily}
  (weight-equal
    [(if (> (rsi "SPY" {:window 10}) 100)
        [(asset "BIL")]
        [(asset "SPY")])]))
"""

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    (strategies / "rule.clj").write_text(RULE)
    (strategies / "allocation.json").write_text(
        json.dumps({"files": ["rule.clj"], "allocations": {"rule.clj": 1}})
    )
    return tmp_path


def alchemiser(home: Path, *args: str, rsi_changed: bool = False) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ALCHEMISER_")}
    env["ALCHEMISER_STRATEGY_CONFIG"] = str(home / "strategies" / "allocation.json")
    module = "tests.e2e.rsi_changed" if rsi_changed else "services.cli"
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=home,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.stdout


def run_workflow(home: Path, rsi_changed: bool = False) -> str:
    before = set((home / "out").glob("*.txt")) if (home / "out").exists() else set()
    output = alchemiser(home, "run", rsi_changed=rsi_changed)
    assert "COMPLETED" in output, output
    [email] = set((home / "out").glob("*.txt")) - before
    return email.stem


def signal_targets(home: Path, workflow_id: str) -> dict[str, str]:
    events = json.loads(alchemiser(home, "events", "--workflow", workflow_id, "--format", "json"))
    [signal] = [event for event in events if event["event_type"] == "SignalGenerated"]
    targets: dict[str, str] = signal["payload"]["consolidated_portfolio"]["target_allocations"]
    return {symbol: weight for symbol, weight in targets.items() if float(weight) > 0}


def evaluated_targets(home: Path, as_of: str, rsi_changed: bool = False) -> dict[str, float]:
    dates = home / "dates.txt"
    dates.write_text(as_of + "\n")
    output = alchemiser(
        home,
        "evaluate",
        str(home / "strategies" / "rule.clj"),
        "--bars",
        str(home / "data" / "bars" / "bars.parquet"),
        "--dates-file",
        str(dates),
        "--format",
        "jsonl",
        rsi_changed=rsi_changed,
    )
    [line] = [json.loads(text) for text in output.splitlines() if text.startswith("{")]
    weights: dict[str, float] = line["weights"]
    return weights


def test_one_rule_change_reaches_the_service_replay_and_evaluate(home: Path) -> None:
    recorded = run_workflow(home)
    events = json.loads(alchemiser(home, "events", "--workflow", recorded, "--format", "json"))
    as_of = next(e for e in events if e["event_type"] == "SignalGenerated")["payload"]["as_of"]
    assert signal_targets(home, recorded) == {"SPY": "1"}
    assert evaluated_targets(home, as_of) == {"SPY": 1.0}
    assert "plan:   BUY SPY" in alchemiser(home, "replay", "--workflow", recorded)

    assert signal_targets(home, run_workflow(home, rsi_changed=True)) == {"BIL": "1"}
    replayed = alchemiser(home, "replay", "--workflow", recorded, rsi_changed=True)
    assert "plan:   BUY BIL" in replayed, replayed
    assert evaluated_targets(home, as_of, rsi_changed=True) == {"BIL": 1.0}
