"""`alchemiser serve` and `python -m services.<name>` as a user runs them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import delete_bus_namespace, unique_bus_namespace

pytestmark = pytest.mark.integration

ALCHEMISER = [sys.executable, "-m", "services.cli"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ALCHEMISER_")}
    env.update({"ALCHEMISER_DATA_DIR": str(tmp_path / "data"), **extra})
    return env


def wait_for_health(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the service exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no /healthz on port {port} within {timeout_s} s")


def test_a_service_on_an_unmigrated_database_exits_saying_to_run_db_upgrade(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [*ALCHEMISER, "serve", "portfolio", "--port", str(free_port())],
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "alchemiser db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_invalid_setting_stops_the_service_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [*ALCHEMISER, "serve", "portfolio"],
        env=environment(tmp_path, ALCHEMISER_EXEC_POLL_S="often"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "ALCHEMISER_EXEC_POLL_S" in result.stderr


@pytest.mark.parametrize(
    "command",
    [["serve", "notify"], ["-m", "services.notify"]],
    ids=["alchemiser-serve", "python-m"],
)
def test_after_db_upgrade_the_service_serves_and_stops_cleanly_on_sigterm(
    tmp_path: Path, rabbitmq_url: str, command: list[str]
) -> None:
    namespace = unique_bus_namespace()
    env = environment(
        tmp_path, ALCHEMISER_RABBITMQ_URL=rabbitmq_url, ALCHEMISER_BUS_NAMESPACE=namespace
    )
    upgrade = subprocess.run(
        [*ALCHEMISER, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60
    )
    assert upgrade.returncode == 0, upgrade.stderr
    port = free_port()
    argv = (
        [sys.executable, *command, "--port", str(port)]
        if command[0] == "-m"
        else [*ALCHEMISER, *command, "--port", str(port)]
    )
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_health(port, process)
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        asyncio.run(delete_bus_namespace(namespace))
    # uvicorn re-raises the signal it handled after a clean shutdown
    assert process.returncode in (0, -signal.SIGTERM), stderr.decode()


@pytest.mark.parametrize(
    "command",
    [["serve", "portfolio"], ["-m", "services.portfolio"]],
    ids=["alchemiser-serve", "python-m"],
)
def test_a_port_in_use_stops_the_service_at_once_with_one_line(
    tmp_path: Path, rabbitmq_url: str, command: list[str]
) -> None:
    env = environment(tmp_path, ALCHEMISER_RABBITMQ_URL=rabbitmq_url)
    upgrade = subprocess.run(
        [*ALCHEMISER, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60
    )
    assert upgrade.returncode == 0, upgrade.stderr
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        argv = [sys.executable, *command] if command[0] == "-m" else [*ALCHEMISER, *command]
        started = time.monotonic()
        result = subprocess.run(
            [*argv, "--port", str(port)], env=env, capture_output=True, text=True, timeout=30
        )
    assert time.monotonic() - started < 15
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"--port {port}" in result.stderr
    assert "choose another port" in result.stderr
