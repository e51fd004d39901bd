"""Dry runs as a user makes them (docs/trading-rules.md, Dry runs): `alchemiser run --dry-run`
previews the orders without touching the simulated broker's order table, `alchemiser events`
and the summary say it is a dry run, and `alchemiser trigger --dry-run --wait` follows one
through the strategy service's API to its summary."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

import pytest
import uvicorn

from services.embedded import EmbeddedSystem
from shared.service.app import create_app
from shared.settings import load_settings
from tests.cli import run_alchemiser

pytestmark = pytest.mark.slow

TOKEN = "dry-run-test-token"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where one run has traded, so the order table has rows to keep."""
    folder = tmp_path_factory.mktemp("dry-run")
    result = run_alchemiser(folder, "run")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def broker_orders(home: Path) -> list[dict[str, object]]:
    result = run_alchemiser(home, "broker", "orders", "--format", "json")
    assert result.returncode == 0, result.stderr
    orders: list[dict[str, object]] = json.loads(result.stdout)
    return orders


def test_run_dry_run_previews_orders_and_leaves_the_order_table_alone(home: Path) -> None:
    before = broker_orders(home)
    assert before
    result = run_alchemiser(home, "run", "--dry-run", "--account", "fresh")
    assert result.returncode == 0, result.stderr[-3000:]
    assert broker_orders(home) == before

    first = result.stdout.splitlines()[0]
    assert first.startswith("Dry run dry-run-") and "COMPLETED" in first, first
    assert "DRY RUN: nothing was sent to the broker" in result.stdout
    assert "Orders previewed (none sent)" in result.stdout
    assert "orders previewed (dry run: none sent)" in result.stderr
    workflow_id = first.split()[2]
    for report in (home / "out").glob(f"{workflow_id}.*"):
        assert "DRY RUN" in report.read_text(encoding="utf-8")

    events = run_alchemiser(home, "events", "--workflow", workflow_id)
    assert events.returncode == 0, events.stderr
    assert "DRY RUN: nothing is sent to the broker" in events.stdout
    assert "would BUY" in events.stdout
    assert "OrderRequested" not in events.stdout and "TradeExecuted" not in events.stdout


def test_email_without_dry_run_is_refused_in_one_line(home: Path) -> None:
    for command in ("run", "trigger"):
        result = run_alchemiser(home, command, "--email")
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert "--email" in result.stderr and "--dry-run" in result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def trigger_and_wait(home: Path, *extra: str) -> tuple[int, str, str]:
    """The embedded services with the strategy service's HTTP API on a local port, and
    `alchemiser trigger ... --wait` as its own process against it."""
    settings = load_settings(data_dir=home / "data", cache_dir=home / "cache", api_token=TOKEN)
    system = EmbeddedSystem(settings)
    await system.start()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(system.runtimes[0]),
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            "trigger",
            *extra,
            "--wait",
            "--url",
            f"http://127.0.0.1:{port}",
            cwd=home,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("ALCHEMISER_")},
                "ALCHEMISER_DATA_DIR": str(home / "data"),
                "ALCHEMISER_CACHE_DIR": str(home / "cache"),
                "ALCHEMISER_API_TOKEN": TOKEN,
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=300)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()
    finally:
        server.should_exit = True
        await serving
        await system.stop()


def test_trigger_dry_run_wait_prints_the_summary_and_a_run_still_starts(home: Path) -> None:
    before = broker_orders(home)
    code, out, err = asyncio.run(trigger_and_wait(home, "--dry-run", "--account", "fresh2"))
    assert code == 0, err[-3000:]
    assert broker_orders(home) == before
    lines = out.splitlines()
    assert lines[0].startswith("dry run dry-run-") and "started" in lines[0], out
    assert lines[1].startswith("Dry run dry-run-") and "COMPLETED" in lines[1], out
    assert "Orders previewed (none sent)" in out and "Plan" in out

    # a normal run is summarised the same way, and still starts: the dry run took no day's key
    code, out, err = asyncio.run(trigger_and_wait(home, "--force", "--account", "fresh2"))
    assert code == 0, err[-3000:]
    assert out.splitlines()[1].startswith("Workflow ") and "COMPLETED" in out, out
    assert "Orders:" in out and "Orders previewed" not in out
    assert broker_orders(home) != before
