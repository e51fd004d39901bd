"""Read models rebuild from the store: the trade ledger maintained incrementally (checkpointed
between runs) equals the one rebuilt from the first event, and its positions are the broker's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from services.projections import UNATTRIBUTED, TradeLedger
from services.strategy.symphonies import bundled_config
from shared.eventstore.store import SqlEventStore

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def run(cwd: Path, **settings: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ALCHEMISER_")}
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "run"],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(REPO), **settings},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def broker_positions(cwd: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ALCHEMISER_")}
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "broker", "positions", "--format", "json"],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return {row["symbol"]: row["qty"] for row in json.loads(result.stdout)}


async def test_the_ledger_maintained_incrementally_equals_the_one_rebuilt_from_scratch(
    tmp_path: Path,
) -> None:
    run(tmp_path)
    store = SqlEventStore(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'alchemiser.db'}")
    try:
        maintained = await TradeLedger.rebuild(store)
        checkpoint = maintained.to_document()
        assert maintained.fills, "the first run bought its targets"

        # A second day with other strategies: sells the holdings, buys SPY.
        other = tmp_path / "other"
        other.mkdir()
        shutil.copy(bundled_config().parent / "test.clj", other / "test.clj")
        (other / "allocation.json").write_text(
            json.dumps({"files": ["test.clj"], "allocations": {"test.clj": 1}})
        )
        run(tmp_path, ALCHEMISER_STRATEGY_CONFIG=str(other / "allocation.json"))

        restored = TradeLedger.from_document(checkpoint)
        await restored.catch_up(store)
        rebuilt = await TradeLedger.rebuild(store)
    finally:
        await store.close()

    assert restored.to_document() == rebuilt.to_document()
    assert rebuilt.last_position > maintained.last_position
    held = {s: q for s, q in rebuilt.positions()["default"].items() if q != 0}
    at_broker = {s: Decimal(q) for s, q in broker_positions(tmp_path).items()}
    assert held == at_broker
    traded = rebuilt.traded_by_strategy()
    assert traded["test.clj"] > 0  # the SPY purchase
    assert UNATTRIBUTED in traded and traded[UNATTRIBUTED] < 0  # the liquidations
