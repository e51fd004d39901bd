"""`alchemiser` as a real process in a folder of its own, as other tools run it: none of the
caller's ALCHEMISER_* settings, the data and parse-cache directories inside the folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def run_alchemiser(
    folder: Path, *arguments: str | Path, settings: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`alchemiser ARGUMENTS` with `folder` as its working directory; `settings` adds
    ALCHEMISER_* variables."""
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith("ALCHEMISER_")},
        "ALCHEMISER_DATA_DIR": str(folder / "data"),
        "ALCHEMISER_CACHE_DIR": str(folder / "cache"),
        **(settings or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *map(str, arguments)],
        capture_output=True,
        text=True,
        cwd=folder,
        env=environment,
        timeout=600,
    )
