"""The allocation JSON that combines strategy files into one portfolio
(docs/strategy-language.md, Combining strategy files).

`{"files": ["a.clj", "b.clj"], "allocations": {"a.clj": 0.6, "b.clj": 0.4}}`: every listed file
has exactly one weight, weights are finite and ≥ 0 with a positive sum, and are normalised to the
file weights `a_f`. The config is checked completely before any file is parsed or any data is
read, because a half-valid config must never produce a partial portfolio.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

WEIGHT_SUM_WARNING = 1e-6
CONSOLIDATED_SUM_TOLERANCE = 1e-9


class AllocationConfigError(ValueError):
    """The allocation JSON is unusable; the message names the config file, the key and the fix."""


@dataclass(frozen=True, slots=True)
class AllocationConfig:
    """A validated config. `file_weights` are the normalised `a_f`, in `files` order."""

    path: Path
    files: tuple[str, ...]
    file_weights: Mapping[str, float]
    warnings: tuple[str, ...]

    @property
    def active_files(self) -> tuple[str, ...]:
        """The files to evaluate: a file with weight 0 is not evaluated."""
        return tuple(name for name in self.files if self.file_weights[name] > 0.0)

    def file_path(self, name: str) -> Path:
        return self.path.parent / name


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a valid weight")


def load_allocation_config(path: Path) -> AllocationConfig:
    """Read and validate the config at `path`; listed files must exist beside it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise AllocationConfigError(
            f"{path}: cannot read the allocation config ({error.strerror or error}); "
            "check ALCHEMISER_STRATEGY_CONFIG or --config"
        ) from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise AllocationConfigError(
            f"{path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}"
        ) from None
    except ValueError as error:
        raise AllocationConfigError(f"{path}: {error}; write a finite number") from None
    config = parse_allocation_config(data, path)
    for name in config.files:
        if not config.file_path(name).is_file():
            raise AllocationConfigError(
                f"{path}: files: {name!r} not found at {config.file_path(name)}; file names "
                "are relative to the config's folder"
            )
    return config


def parse_allocation_config(data: object, path: Path) -> AllocationConfig:
    """Validate already-decoded JSON (docs/strategy-language.md, Combining strategy files); `path`
    locates the files and the messages."""
    if not isinstance(data, dict):
        raise AllocationConfigError(
            f'{path}: expected a JSON object {{"files": [...], "allocations": {{...}}}}'
        )
    unknown = sorted(set(data) - {"files", "allocations"})
    if unknown:
        raise AllocationConfigError(
            f"{path}: unknown key {unknown[0]!r}; only 'files' and 'allocations' are allowed"
        )
    for key in ("files", "allocations"):
        if key not in data:
            raise AllocationConfigError(f"{path}: missing key {key!r}")
    files = data["files"]
    if not isinstance(files, list) or not files:
        raise AllocationConfigError(f"{path}: 'files' must be a non-empty list of file names")
    seen: set[str] = set()
    for position, name in enumerate(files):
        if not isinstance(name, str) or not name.strip():
            raise AllocationConfigError(
                f"{path}: files[{position}] must be a file name, got {name!r}"
            )
        if name in seen:
            raise AllocationConfigError(f"{path}: files[{position}]: {name!r} is listed twice")
        seen.add(name)
    allocations = data["allocations"]
    if not isinstance(allocations, dict):
        raise AllocationConfigError(
            f"{path}: 'allocations' must be an object mapping each file to its weight"
        )
    for name in files:
        if name not in allocations:
            raise AllocationConfigError(
                f"{path}: allocations: no weight for {name!r}; give every listed file a weight "
                "(0 to switch it off)"
            )
    for name in allocations:
        if name not in seen:
            raise AllocationConfigError(
                f"{path}: allocations: {name!r} is not in 'files'; add it there or remove "
                "its weight"
            )
    raw: dict[str, float] = {}
    for name in files:
        weight = allocations[name]
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise AllocationConfigError(
                f"{path}: allocations[{name!r}]: expected a number, got {weight!r}"
            )
        if not math.isfinite(weight) or weight < 0:
            raise AllocationConfigError(
                f"{path}: allocations[{name!r}]: weights must be finite and ≥ 0, got {weight!r}"
            )
        raw[name] = float(weight)
    total = math.fsum(raw.values())
    if total <= 0.0:
        raise AllocationConfigError(
            f"{path}: allocations: the weights sum to 0; give at least one file a positive weight"
        )
    warnings: tuple[str, ...] = ()
    if abs(total - 1.0) > WEIGHT_SUM_WARNING:
        warnings = (
            f"{path}: allocations sum to {total!r}, not 1; each file gets its weight / {total!r}",
        )
    return AllocationConfig(
        path=path,
        files=tuple(files),
        file_weights={name: weight / total for name, weight in raw.items()},
        warnings=warnings,
    )


def consolidate(
    file_weights: Mapping[str, float], allocations: Mapping[str, Mapping[str, float]]
) -> dict[str, float]:
    """`W(t) = Σ_f a_f · A_f(t)` over the files with a positive weight, sorted by ticker, zero
    weights left out (docs/strategy-language.md, Combining strategy files). Every such file must
    have an allocation."""
    combined: dict[str, float] = {}
    for name, file_weight in file_weights.items():
        if file_weight <= 0.0:
            continue
        for ticker, weight in allocations[name].items():
            combined[ticker] = combined.get(ticker, 0.0) + file_weight * weight
    result = {ticker: combined[ticker] for ticker in sorted(combined) if combined[ticker] > 0.0}
    total = math.fsum(result.values())
    if abs(total - 1.0) > CONSOLIDATED_SUM_TOLERANCE:
        raise AssertionError(f"consolidated weights sum to {total!r}, not 1: {result}")
    return result
