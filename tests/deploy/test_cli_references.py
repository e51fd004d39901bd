"""Every `alchemiser ...` command line that compose.yaml and the Kubernetes manifests run names a
command the CLI has (options are checked by the process test; this catches a renamed command)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer

from services.cli import app
from tests.deploy.compose_file import application_services, load_compose
from tests.deploy.kustomize import containers

# Written by another engineer as this lands; the test turns green by itself once it exists.
SHELL_CALL = re.compile(r"\balchemiser ((?:[a-z][a-z-]* ?)+)")


def compose_command_lines() -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {}
    for service in application_services(load_compose()).values():
        if "entrypoint" in service.definition:
            script = " ".join(service.command).replace(
                '"${BARS_REFRESH}"', service.environment["BARS_REFRESH"]
            )
            for number, call in enumerate(SHELL_CALL.findall(script)):
                lines[f"{service.name}:{number}"] = call.split()
        else:
            lines[service.name] = service.command
    # The scheduler's other documented BARS_REFRESH value.
    lines["scheduler:refresh-fetch"] = ["data", "fetch"]
    return lines


def kubernetes_command_lines() -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {}
    for manifest, container in containers("live"):
        if not container["image"].endswith("/alchemiser:0.1.0"):
            continue
        name = manifest["metadata"]["name"]
        if container.get("command"):
            for number, call in enumerate(SHELL_CALL.findall(" ".join(container["args"]))):
                lines[f"{name}:{number}"] = call.split()
        else:
            lines[name] = container["args"]
    return lines


def unknown_command(words: list[str]) -> tuple[str, ...] | None:
    """The words that fail to name a command, or None when they resolve to one. A group has
    `commands` (typer ships its own click, so this is duck-typed)."""
    command: Any = typer.main.get_command(app)
    walked: list[str] = []
    for word in words:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            return None
        if word not in subcommands:
            return (*walked, word)
        walked.append(word)
        command = subcommands[word]
    return tuple(walked) if getattr(command, "commands", None) is not None else None


def check(where: str, words: list[str]) -> None:
    missing = unknown_command(words)
    assert missing is None, f"{where}: `alchemiser {' '.join(words)}` is not a command"


@pytest.mark.parametrize("where", sorted(compose_command_lines()))
def test_compose_command_lines_name_existing_cli_commands(where: str) -> None:
    check(where, compose_command_lines()[where])


def test_kubernetes_command_lines_name_existing_cli_commands() -> None:
    lines = kubernetes_command_lines()
    assert len(lines) == 9  # five services, the migration, the refresh and two triggers
    for where, words in sorted(lines.items()):
        check(where, words)
