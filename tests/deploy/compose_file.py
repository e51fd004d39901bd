"""`compose.yaml` as docker compose reads it: YAML with merge keys, then `${VAR:-default}`
interpolation from the `.env` variables (none, for the no-setup paper run)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
APPLICATION_IMAGE = "alchemiser:local"

# The innermost `${...}`: its default holds no `$`, `{` or `}`, so nested defaults such as
# `${URL:-postgresql://${USER:-alchemiser}@postgres}` resolve from the inside out.
_INNERMOST = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^${}]*))?\}"
)
_ESCAPED_DOLLAR = "\0"


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's substitution: `$$` is a literal `$`; `${V:-d}` takes d when V is unset or empty,
    `${V-d}` only when unset; a bare `${V}` unset is the empty string; defaults may nest."""

    def substitute(match: re.Match[str]) -> str:
        value = variables.get(match["name"])
        if match["op"] == ":-" and not value:
            return match["default"]
        if match["op"] == "-" and value is None:
            return match["default"]
        return value or ""

    resolved = text.replace("$$", _ESCAPED_DOLLAR)
    while (substituted := _INNERMOST.sub(substitute, resolved)) != resolved:
        resolved = substituted
    return resolved.replace(_ESCAPED_DOLLAR, "$")


def _interpolated(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolated(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: _interpolated(value, variables) for key, value in node.items()}
    return node


def load_compose(variables: Mapping[str, str] | None = None) -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return dict(_interpolated(document, variables or {}))


@dataclass(frozen=True)
class ComposeService:
    name: str
    command: list[str]
    environment: dict[str, str]
    definition: dict[str, Any]


def application_services(compose: Mapping[str, Any]) -> dict[str, ComposeService]:
    """The services that run our image, in file order."""
    return {
        name: ComposeService(
            name=name,
            command=[str(part) for part in service.get("command", [])],
            environment={key: str(value) for key, value in service["environment"].items()},
            definition=service,
        )
        for name, service in compose["services"].items()
        if service.get("image") == APPLICATION_IMAGE
    }
