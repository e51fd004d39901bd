"""Strategy engine: parsing, evaluation at one and at 250 dates, and the `alchemiser evaluate`
process, on the bundled strategy files and the public conformance bars.

Prints figures and the machine's details only; never fails on a timing.

    .venv/bin/python benchmarks/dsl.py
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import date
from importlib.metadata import version
from pathlib import Path

from services.strategy.dsl.ast import Symphony
from services.strategy.dsl.compiler import parse_symphony
from services.strategy.dsl.evaluator import evaluate_symphony
from services.strategy.parse_cache import load_symphony
from services.strategy.signals import StrategyDecision, decide_dates
from shared.marketdata.bars import BarSnapshot
from shared.marketdata.bars_file import load_bars

REPO = Path(__file__).resolve().parents[1]
SYMPHONIES = REPO / "services" / "strategy" / "symphonies"
BARS = REPO / "tests" / "conformance" / "data" / "bars-public.parquet"
ONE_DATE = date(2024, 5, 17)
LARGEST = "3-Starburst.clj"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU ({cpu}), "
        f"load average {load}; Python {platform.python_version()}, numpy {version('numpy')}, "
        f"pyarrow {version('pyarrow')}"
    )


def timed(action: Callable[[], object], repeat: int = 1) -> float:
    """Best of `repeat` wall-clock runs, in seconds (the least disturbed by other jobs)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def _cpu_seconds(action: Callable[[], object]) -> float:
    started = time.process_time()
    action()
    return time.process_time() - started


def parse_figures(files: list[Path], cache_dir: Path) -> dict[str, Symphony]:
    print("\nParse (per file): cold = read + check from text; warm = load_symphony from the cache")
    print(f"{'file':<18} {'bytes':>9} {'cold ms':>9} {'warm ms':>9}")
    symphonies: dict[str, Symphony] = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        cold = timed(lambda text=text, name=path.name: parse_symphony(text, name))
        load_symphony(path, cache_dir)
        warm = timed(lambda path=path: load_symphony(path, cache_dir), repeat=3)
        symphonies[path.name] = load_symphony(path, cache_dir)
        print(f"{path.name:<18} {path.stat().st_size:>9,} {cold * 1e3:>9.1f} {warm * 1e3:>9.1f}")
    return symphonies


def traced(symphony: Symphony, bars: BarSnapshot, dates: list[date]) -> None:
    """Evaluates and reads every date's trace: traces are walked when read, and the figures
    "with the trace" include that walk."""
    for evaluation in evaluate_symphony(symphony, bars, dates):
        if evaluation.trace is not None:
            evaluation.trace.entries  # noqa: B018 - reading walks the trace


def evaluation_figures(symphonies: dict[str, Symphony], bars: BarSnapshot) -> None:
    last_250 = [day.astype(object) for day in bars.sessions[-250:]]
    print(
        f"\nEvaluation after parsing, each file on its own indicator cache (as-of {ONE_DATE}; "
        f"250 dates = sessions {last_250[0]} … {last_250[-1]}; trace on)"
    )
    print(f"{'file':<18} {'1 date ms':>10} {'250 dates s':>12} {'ms/date':>9}")
    one_total = 0.0
    for name, symphony in symphonies.items():
        one = timed(lambda s=symphony: traced(s, bars, [ONE_DATE]), repeat=3)
        many = timed(lambda s=symphony: traced(s, bars, last_250))
        one_total += one
        print(f"{name:<18} {one * 1e3:>10.1f} {many:>12.3f} {many / 250 * 1e3:>9.2f}")
    print(f"{'all ten, 1 date':<18} {one_total * 1e3:>10.1f}  (sum of the per-file figures)")

    def all_ten_shared() -> None:
        [decision] = decide_dates(symphonies, {}, bars, [ONE_DATE])
        for outcome in decision.strategies.values():
            if isinstance(outcome, StrategyDecision) and outcome.trace is not None:
                outcome.trace.compact()

    shared = timed(all_ten_shared, repeat=3)
    print(
        f"{'all ten, shared':<18} {shared * 1e3:>10.1f}  "
        "(decide_dates: one indicator cache, as the CLI and the service do)"
    )
    cpu = min(_cpu_seconds(all_ten_shared) for _ in range(3))
    print(f"{'  same, CPU time':<18} {cpu * 1e3:>10.1f}  (process CPU, less sensitive to load)")

    largest = symphonies[LARGEST]
    untraced = timed(lambda: evaluate_symphony(largest, bars, last_250, trace=False))
    print(f"{LARGEST} at 250 dates without the trace: {untraced:.3f} s")

    tracemalloc.start()
    traced(largest, bars, last_250)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{LARGEST} at 250 dates: peak traced allocation {peak / 2**20:.1f} MiB")


def cli_figures(files: list[Path], cache_dir: Path, dates_file: Path) -> None:
    environment = {**os.environ, "ALCHEMISER_CACHE_DIR": str(cache_dir)}

    def run(*arguments: str) -> tuple[float, float]:
        """Wall seconds and CPU seconds (user + system) of one process."""
        command = [sys.executable, "-m", "services.cli", "evaluate", *arguments]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            command,
            check=True,
            env=environment,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        return wall, cpu

    all_ten = [str(path) for path in files]
    one_date = ("--bars", str(BARS), "--as-of", ONE_DATE.isoformat())
    run(*all_ten, *one_date)
    ten = min(run(*all_ten, *one_date) for _ in range(3))
    starburst = run(str(SYMPHONIES / LARGEST), "--bars", str(BARS), "--dates-file", str(dates_file))
    print("\n`alchemiser evaluate` process, parse cache warm, including start-up")
    print(f"all ten files at 1 date:        {ten[0]:.2f} s wall, {ten[1]:.2f} s CPU (best of 3)")
    print(f"{LARGEST} at 250 dates:   {starburst[0]:.2f} s wall, {starburst[1]:.2f} s CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-cli", action="store_true", help="skip the subprocess figures")
    options = parser.parse_args()
    print(f"Machine: {machine()}")
    files = sorted(SYMPHONIES.glob("*.clj"))
    with tempfile.TemporaryDirectory(prefix="alchemiser-bench-") as scratch:
        cache_dir = Path(scratch) / "cache"
        symphonies = parse_figures(files, cache_dir)
        started = time.perf_counter()
        bars = load_bars(BARS)
        print(
            f"\nBars: {len(bars.symbols)} symbols × {bars.sessions.size} sessions loaded in "
            f"{time.perf_counter() - started:.2f} s"
        )
        evaluation_figures(symphonies, bars)
        if not options.skip_cli:
            dates_file = Path(scratch) / "dates.txt"
            dates_file.write_text(
                "".join(f"{day.astype(object)}\n" for day in bars.sessions[-250:]), "utf-8"
            )
            cli_figures(files, cache_dir, dates_file)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\nPeak resident memory of this benchmark process: {peak_rss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
