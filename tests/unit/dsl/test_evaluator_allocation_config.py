"""Combining strategy files
(docs/strategy-language.md, Combining strategy files / Combination example)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.allocation_config import (
    AllocationConfigError,
    consolidate,
    load_allocation_config,
)

A = {"SPY": 1.0}
B = {"SPY": 0.5, "TLT": 0.5}


def write_config(
    folder: Path, content: object, files: tuple[str, ...] = ("a.clj", "b.clj")
) -> Path:
    for name in files:
        (folder / name).write_text('(defsymphony "x" {} (asset "SPY"))', encoding="utf-8")
    path = folder / "allocation.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return path


def test_file_weights_multiply_each_file_allocation(tmp_path: Path) -> None:
    config = load_allocation_config(
        write_config(
            tmp_path, {"files": ["a.clj", "b.clj"], "allocations": {"a.clj": 0.4, "b.clj": 0.6}}
        )
    )
    assert config.warnings == ()
    result = consolidate(config.file_weights, {"a.clj": A, "b.clj": B})
    assert result == pytest.approx({"SPY": 0.7, "TLT": 0.3}, abs=1e-12)
    assert list(result) == ["SPY", "TLT"]


def test_weights_not_summing_to_one_are_normalised_with_a_warning(tmp_path: Path) -> None:
    config = load_allocation_config(
        write_config(
            tmp_path, {"files": ["a.clj", "b.clj"], "allocations": {"a.clj": 2, "b.clj": 3}}
        )
    )
    assert len(config.warnings) == 1 and "sum to 5.0" in config.warnings[0]
    assert consolidate(config.file_weights, {"a.clj": A, "b.clj": B}) == pytest.approx(
        {"SPY": 0.7, "TLT": 0.3}, abs=1e-12
    )


def test_allocation_for_an_unlisted_file_is_a_config_error(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {"files": ["a.clj", "b.clj"], "allocations": {"a.clj": 0.4, "b.clj": 0.4, "c.clj": 0.2}},
    )
    with pytest.raises(AllocationConfigError, match=r"'c.clj' is not in 'files'"):
        load_allocation_config(path)


def test_listed_file_without_weight_is_a_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"files": ["a.clj", "b.clj"], "allocations": {"a.clj": 1}})
    with pytest.raises(AllocationConfigError, match=r"no weight for 'b.clj'"):
        load_allocation_config(path)


@pytest.mark.parametrize(
    ("weight", "message"),
    [
        (-0.1, "weights must be finite and ≥ 0"),
        ("0.5", "expected a number"),
        (True, "expected a number"),
    ],
)
def test_bad_weight_names_the_file_key(tmp_path: Path, weight: object, message: str) -> None:
    path = write_config(
        tmp_path, {"files": ["a.clj", "b.clj"], "allocations": {"a.clj": weight, "b.clj": 1}}
    )
    with pytest.raises(AllocationConfigError, match=rf"allocations\['a.clj'\]: {message}"):
        load_allocation_config(path)


def test_non_finite_weight_is_rejected(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, '{"files": ["a.clj", "b.clj"], "allocations": {"a.clj": NaN, "b.clj": 1}}'
    )
    with pytest.raises(AllocationConfigError, match="NaN is not a valid weight"):
        load_allocation_config(path)


def test_all_zero_weights_are_rejected(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, {"files": ["a.clj", "b.clj"], "allocations": {"a.clj": 0, "b.clj": 0}}
    )
    with pytest.raises(AllocationConfigError, match="sum to 0"):
        load_allocation_config(path)


def test_zero_weight_file_is_not_evaluated(tmp_path: Path) -> None:
    config = load_allocation_config(
        write_config(
            tmp_path, {"files": ["a.clj", "b.clj"], "allocations": {"a.clj": 0, "b.clj": 1}}
        )
    )
    assert config.active_files == ("b.clj",)
    assert consolidate(config.file_weights, {"b.clj": B}) == B


def test_missing_strategy_file_is_reported_relative_to_the_config_folder(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {"files": ["a.clj", "gone.clj"], "allocations": {"a.clj": 1, "gone.clj": 1}},
        files=("a.clj",),
    )
    with pytest.raises(AllocationConfigError, match=r"'gone.clj' not found at .*gone.clj"):
        load_allocation_config(path)


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = write_config(tmp_path, '{"files": ["a.clj"],\n "allocations": {"a.clj": 1,}}')
    with pytest.raises(AllocationConfigError, match=r"allocation.json:2:\d+: invalid JSON"):
        load_allocation_config(path)


def test_bundled_configs_are_valid() -> None:
    folder = Path("services/strategy/symphonies")
    for name in ("allocation.prod.json", "allocation.dev.json"):
        config = load_allocation_config(folder / name)
        assert sum(config.file_weights.values()) == pytest.approx(1.0, abs=1e-12)
        assert config.warnings == ()
