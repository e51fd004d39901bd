"""deploy/Dockerfile read as instructions (continuation lines joined), grouped by stage."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [argument for name, argument in self.instructions if name == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name} has no {keyword}"
        return found[-1]


def instructions(text: str) -> list[tuple[str, str]]:
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    result = []
    for line in logical:
        keyword, _, argument = line.partition(" ")
        result.append((keyword.upper(), argument.strip()))
    return result


def stages(path: Path = DOCKERFILE) -> list[Stage]:
    found: list[Stage] = []
    for keyword, argument in instructions(path.read_text(encoding="utf-8")):
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", argument, flags=re.IGNORECASE)
            assert match, argument
            found.append(Stage(base=match[1], name=match[2] or str(len(found))))
        else:
            found[-1].instructions.append((keyword, argument))
    return found


def exec_form(argument: str) -> list[str]:
    """An ENTRYPOINT/CMD in JSON (exec) form; the shell form is refused."""
    value = json.loads(argument)
    assert isinstance(value, list), argument
    return [str(part) for part in value]
