"""Every command, as a user runs it, with a database that does not answer, a database URL it
cannot use, or live mode without a private API token: one line on stderr naming the setting or
server and what to do, and the exit code of services/commands/failures.py (2 for a bad setting,
3 for an unreachable server) — never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import typer

from services.cli import app
from services.registry import ServiceName
from tests.cli import run_alchemiser

pytestmark = pytest.mark.slow


def free_port() -> int:
    """A port nothing listens on: bound once to find it, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


DATABASE_COMMANDS: dict[str, list[str]] = {
    "db upgrade": ["db", "upgrade"],
    "run": ["run"],
    "replay": ["replay", "--workflow", "x"],
    "events": ["events", "--workflow", "x"],
    "broker orders": ["broker", "orders"],
    "broker positions": ["broker", "positions"],
    "broker account": ["broker", "account"],
    "pnl": ["pnl"],
    "halt": ["halt", "--local"],
    "resume": ["resume", "--local"],
    "projections rebuild": ["projections", "rebuild"],
    "web": ["web", "--port", str(free_port())],
    **{
        f"serve {service}": ["serve", service, "--port", str(free_port())]
        for service in ("strategy", "portfolio", "execution", "notify", "web")
    },
}
NO_DATABASE_COMMANDS = {
    "evaluate",
    "backtest",
    "trigger",
    "data import",
    "data fetch",
    "data sample",
}


def command_names(command: Any, prefix: str = "") -> set[str]:
    """Every leaf command; `serve`'s service is an argument, one command per choice."""
    if prefix == "serve ":
        return {f"serve {service.value}" for service in ServiceName}
    if hasattr(command, "commands"):
        return {
            name
            for sub_name, sub in command.commands.items()
            for name in command_names(sub, f"{prefix}{sub_name} ")
        }
    return {prefix.strip()}


def assert_one_line(result: object, exit_code: int, *named: str) -> None:
    stderr = getattr(result, "stderr", "")
    assert getattr(result, "returncode", None) == exit_code, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().count("\n") == 0, stderr
    assert stderr.startswith("alchemiser: ")
    for name in named:
        assert name in stderr, stderr


def test_the_walk_below_covers_every_command_of_the_cli() -> None:
    everything = command_names(typer.main.get_command(app))
    assert everything == set(DATABASE_COMMANDS) | NO_DATABASE_COMMANDS


@pytest.mark.parametrize("name", sorted(DATABASE_COMMANDS))
def test_a_database_on_a_closed_port_is_one_line_and_exit_3(tmp_path: Path, name: str) -> None:
    port = free_port()
    result = run_alchemiser(
        tmp_path,
        *DATABASE_COMMANDS[name],
        settings={"ALCHEMISER_DATABASE_URL": f"postgresql://u:hidden@127.0.0.1:{port}/x"},
    )
    assert_one_line(result, 3, f"127.0.0.1:{port}", "ALCHEMISER_DATABASE_URL")
    assert "hidden" not in result.stderr


@pytest.mark.parametrize("url", ["mysql://x:hidden@y/z", "notaurl"])
@pytest.mark.parametrize("name", ["db upgrade", "run", "events", "serve notify"])
def test_a_database_url_of_no_usable_kind_is_one_line_and_exit_2(
    tmp_path: Path, name: str, url: str
) -> None:
    result = run_alchemiser(
        tmp_path, *DATABASE_COMMANDS[name], settings={"ALCHEMISER_DATABASE_URL": url}
    )
    assert_one_line(result, 2, "ALCHEMISER_DATABASE_URL", "postgresql://")
    assert "hidden" not in result.stderr


@pytest.mark.parametrize("token", [None, "paper-only-token-not-a-secret"], ids=["none", "public"])
@pytest.mark.parametrize("name", ["serve strategy", "trigger"])
def test_live_mode_without_a_private_token_is_one_line_and_exit_2(
    tmp_path: Path, name: str, token: str | None
) -> None:
    settings = {"ALCHEMISER_TRADING_MODE": "live", "ALCHEMISER_BROKER": "alpaca"}
    if token is not None:
        settings["ALCHEMISER_API_TOKEN"] = token
    assert run_alchemiser(tmp_path, "db", "upgrade").returncode == 0
    arguments = DATABASE_COMMANDS.get(name, [name])
    result = run_alchemiser(tmp_path, *arguments, settings=settings)
    assert_one_line(result, 2, "ALCHEMISER_API_TOKEN", "long random secret")
