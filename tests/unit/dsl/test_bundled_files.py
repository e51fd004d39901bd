"""The bundled strategy files parse and have the shape dsl.md §1.5 describes; the parse cache
serves a second load without compiling again."""

from __future__ import annotations

import math
import os
import pickle
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from services.strategy import parse_cache
from services.strategy.dsl.ast import (
    Asset,
    Block,
    BlockVector,
    Comparison,
    Filter,
    Group,
    If,
    IndicatorCall,
    Symphony,
    WeightInverseVolatility,
    WeightSpecified,
)
from services.strategy.dsl.compiler import check_universe, parse_symphony
from services.strategy.dsl.errors import DslSyntaxError
from services.strategy.parse_cache import cache_key, load_symphony
from services.strategy.signal_step import bundled_symbols

SYMPHONIES = Path(__file__).parents[3] / "services" / "strategy" / "symphonies"
BUNDLED = sorted(SYMPHONIES.glob("*.clj"))
CONFORMANCE_BARS = Path(__file__).parents[2] / "conformance" / "data" / "bars-public.parquet"


def nodes(block: Block) -> Iterator[Block]:
    yield block
    if isinstance(block, If):
        yield from nodes(block.then)
        yield from nodes(block.otherwise)
    elif not isinstance(block, Asset):
        for child in block.children:
            yield from nodes(child)


@pytest.fixture(scope="module")
def parsed() -> dict[str, Symphony]:
    return {path.name: parse_symphony(path.read_text("utf-8"), path.name) for path in BUNDLED}


@pytest.fixture(scope="module")
def all_nodes(parsed: dict[str, Symphony]) -> list[Block]:
    return [node for symphony in parsed.values() for node in nodes(symphony.body)]


def test_there_are_ten_bundled_files() -> None:
    assert len(BUNDLED) == 10


def test_the_sample_symbols_are_every_ticker_of_the_bundled_files_plus_spy(
    tmp_path: Path,
) -> None:
    expected = set(
        pq.read_table(CONFORMANCE_BARS, columns=["symbol"]).column(0).unique().to_pylist()
    )
    assert bundled_symbols(tmp_path) == expected | {"SPY"}


@pytest.mark.parametrize("path", BUNDLED, ids=[path.name for path in BUNDLED])
def test_every_bundled_file_parses_without_warnings(
    path: Path, parsed: dict[str, Symphony]
) -> None:
    symphony = parsed[path.name]
    assert symphony.file_name == path.name
    assert symphony.name
    assert symphony.tickers
    assert symphony.warnings == ()
    assert symphony.options["asset-class"] == "EQUITIES"
    check_universe(symphony, symphony.tickers)


def test_top_level_blocks_are_weight_equal_except_one_inverse_volatility_over_a_group(
    parsed: dict[str, Symphony],
) -> None:
    tops = Counter(type(symphony.body).__name__ for symphony in parsed.values())
    assert tops == {"WeightEqual": 9, "WeightInverseVolatility": 1}
    (wrapped,) = [s.body for s in parsed.values() if isinstance(s.body, WeightInverseVolatility)]
    assert wrapped.window == 50
    assert [type(child) for child in wrapped.children] == [Group]


def test_every_group_body_is_one_block(all_nodes: list[Block]) -> None:
    groups = [node for node in all_nodes if isinstance(node, Group)]
    assert len(groups) == 1211
    assert all(len(group.children) == 1 for group in groups)


def test_every_if_has_vector_branches_fourteen_with_two_blocks(all_nodes: list[Block]) -> None:
    ifs = [node for node in all_nodes if isinstance(node, If)]
    assert len(ifs) == 1646
    branches = [branch for node in ifs for branch in (node.then, node.otherwise)]
    assert all(isinstance(branch, BlockVector) for branch in branches)
    assert sum(len(b.children) == 2 for b in branches if isinstance(b, BlockVector)) == 14
    assert all(isinstance(node.condition, Comparison) for node in ifs)


def test_every_weight_specified_sums_to_one(all_nodes: list[Block]) -> None:
    specified = [node for node in all_nodes if isinstance(node, WeightSpecified)]
    assert len(specified) == 77
    assert all(math.isclose(math.fsum(node.weights), 1.0) for node in specified)


def test_filters_rank_two_to_nine_children_and_48_contain_groups(all_nodes: list[Block]) -> None:
    filters = [node for node in all_nodes if isinstance(node, Filter)]
    assert len(filters) == 298
    assert min(len(f.children) for f in filters) == 2
    assert max(len(f.children) for f in filters) == 9
    assert sum(any(isinstance(c, Group) for c in f.children) for f in filters) == 48
    assert {f.count for f in filters} == {1, 2, 3}


def test_windows_used_match_the_documented_ranges(all_nodes: list[Block]) -> None:
    windows: dict[str, list[int]] = {}
    for node in all_nodes:
        if isinstance(node, If) and isinstance(node.condition, Comparison):
            for operand in (node.condition.left, node.condition.right):
                if isinstance(operand, IndicatorCall) and operand.window is not None:
                    windows.setdefault(operand.indicator, []).append(operand.window)
        if isinstance(node, Filter) and node.rank.window is not None:
            windows.setdefault(node.rank.indicator, []).append(node.rank.window)
        if isinstance(node, WeightInverseVolatility):
            windows.setdefault("inverse-volatility", []).append(node.window)
    assert {name: (min(ws), max(ws)) for name, ws in windows.items()} == {
        "rsi": (5, 200),
        "moving-average-price": (3, 500),
        "exponential-moving-average-price": (4, 210),
        "cumulative-return": (1, 252),
        "moving-average-return": (3, 600),
        "stdev-return": (6, 42),
        "max-drawdown": (3, 252),
        "inverse-volatility": (5, 50),
    }


def test_node_counts_match_the_operator_counts_in_the_source(all_nodes: list[Block]) -> None:
    kinds = Counter(type(node).__name__ for node in all_nodes)
    for kind, operator in (("WeightEqual", "weight-equal"), ("Asset", "asset")):
        written = sum(path.read_text("utf-8").count(f"({operator}\n") for path in BUNDLED)
        written += sum(path.read_text("utf-8").count(f"({operator} ") for path in BUNDLED)
        assert kinds[kind] == written
    assert (kinds["WeightEqual"], kinds["Asset"]) == (2597, 3430)


def counting_parser(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every real parse that load_symphony performs."""
    calls: list[str] = []

    def parse(source: str, file_name: str) -> Symphony:
        calls.append(file_name)
        return parse_symphony(source, file_name)

    monkeypatch.setattr(parse_cache, "parse_symphony", parse)
    return calls


@pytest.mark.parametrize("name", ["1-KMLM.clj", "7-Phoenix.clj"])
def test_second_load_is_served_from_the_cache_without_compiling(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting_parser(monkeypatch)
    first = load_symphony(SYMPHONIES / name, tmp_path)
    second = load_symphony(SYMPHONIES / name, tmp_path)
    assert calls == [name]
    assert second is not first
    assert repr(second.body) == repr(first.body)
    assert (second.name, second.options, second.tickers) == (
        first.name,
        first.options,
        first.tickers,
    )
    assert second.source_sha256 == first.source_sha256
    assert [entry.name for entry in tmp_path.iterdir()] == [
        f"{cache_key((SYMPHONIES / name).read_bytes(), name)}.pickle"
    ]


def test_without_a_cache_dir_every_load_compiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting_parser(monkeypatch)
    load_symphony(SYMPHONIES / "Ult.clj", None)
    load_symphony(SYMPHONIES / "Ult.clj", None)
    assert calls == ["Ult.clj", "Ult.clj"]


def test_a_changed_file_misses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting_parser(monkeypatch)
    strategy = tmp_path / "s.clj"
    strategy.write_text('(defsymphony "s" {} (asset "SPY"))')
    cache = tmp_path / "cache"
    assert load_symphony(strategy, cache).tickers == {"SPY"}
    strategy.write_text('(defsymphony "s" {} (asset "QQQ"))')
    assert load_symphony(strategy, cache).tickers == {"QQQ"}
    assert calls == ["s.clj", "s.clj"]


def test_a_corrupt_cache_entry_is_ignored_and_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting_parser(monkeypatch)
    path = SYMPHONIES / "TECL.clj"
    entry = tmp_path / f"{cache_key(path.read_bytes(), path.name)}.pickle"
    for garbage in (b"not a pickle", pickle.dumps(["a", "list"]), b""):
        entry.write_bytes(garbage)
        assert load_symphony(path, tmp_path).file_name == "TECL.clj"
    assert calls == ["TECL.clj"] * 3
    assert isinstance(pickle.loads(entry.read_bytes()), Symphony)
    load_symphony(path, tmp_path)
    assert calls == ["TECL.clj"] * 3


def test_an_unwritable_cache_does_not_fail_the_load(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    assert load_symphony(SYMPHONIES / "test.clj", blocker / "cache").tickers == {"SPY"}
    assert [entry.name for entry in tmp_path.iterdir()] == ["not-a-directory"]


def test_cache_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    for path in BUNDLED[:3]:
        load_symphony(path, tmp_path)
    names = sorted(entry.name for entry in tmp_path.iterdir())
    assert len(names) == 3
    assert all(name.endswith(".pickle") and not name.startswith(".") for name in names)


def test_syntax_errors_are_not_cached(tmp_path: Path) -> None:
    strategy = tmp_path / "bad.clj"
    strategy.write_text('(defsymphony "s" {} (asset "SPY")')
    cache = tmp_path / "cache"
    with pytest.raises(DslSyntaxError):
        load_symphony(strategy, cache)
    assert not cache.exists() or not any(cache.iterdir())


def test_invalid_utf8_is_a_syntax_error_at_the_byte(tmp_path: Path) -> None:
    strategy = tmp_path / "bad.clj"
    strategy.write_bytes(b'(defsymphony "s" {}\n  (asset "\xc3\xa9\xff"))')
    with pytest.raises(DslSyntaxError) as caught:
        load_symphony(strategy, None)
    assert (caught.value.line, caught.value.column) == (2, 12)
    assert "invalid UTF-8 byte 0xFF" in caught.value.message


def test_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    strategy = tmp_path / "bom.clj"
    strategy.write_bytes(b'\xef\xbb\xbf(defsymphony "s" {} (asset "SPY"))')
    assert load_symphony(strategy, None).tickers == {"SPY"}


def test_cache_entries_are_private_to_the_file_name(tmp_path: Path) -> None:
    content = b'(defsymphony "s" {} (asset "SPY"))'
    assert cache_key(content, "a.clj") != cache_key(content, "b.clj")
    assert cache_key(content, "a.clj") == cache_key(content, "a.clj")
    assert os.path.basename(cache_key(content, "../x.clj")) == cache_key(content, "../x.clj")
