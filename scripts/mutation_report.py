"""Summarise the last `mutmut run` (`make mutation`): per mutated file, how many mutants the unit
tests killed, how many survived, timed out or were suspicious, the kill rate, and the names of
the mutants not killed (`mutmut show NAME` prints one's diff).

The kill rate counts a timeout as killed, as mutmut's own score does: a mutant that makes a test
hang is caught by the suite all the same.

Reads the results mutmut keeps under `mutants/`, with mutmut's own reading of them, so it runs
from the checkout's root after a run and needs mutmut installed (the `dev` extra).
"""

from __future__ import annotations

import sys

from mutmut.configuration import config
from mutmut.mutation.data import SourceFileMutationData
from mutmut.stats import Stat, collect_stat, status_by_exit_code

COLUMNS = ("mutants", "killed", "survived", "timeout", "suspicious", "other", "kill rate")


def kill_rate(stat: Stat) -> str:
    return f"{100 * (stat.killed + stat.timeout) / stat.total:.1f} %" if stat.total else "-"


def row(name: str, stat: Stat) -> list[str]:
    other = stat.total - stat.killed - stat.survived - stat.timeout - stat.suspicious
    counts = (stat.total, stat.killed, stat.survived, stat.timeout, stat.suspicious, other)
    return [name, *(str(count) for count in counts), kill_rate(stat)]


def main() -> int:
    results = []
    for path in config().source_paths:
        data = SourceFileMutationData(path=path)
        data.load()
        if not data.exit_code_by_key:
            print(f"no mutmut results for {path}: run `make mutation` first", file=sys.stderr)
            return 1
        results.append((str(path), data))

    stats = [(name, collect_stat(data)) for name, data in results]
    overall = Stat(
        **{
            field: sum(getattr(stat, field) for _, stat in stats)
            for field in Stat.__dataclass_fields__
        }
    )
    rows = [row(name, stat) for name, stat in stats] + [row("overall", overall)]
    header = ["file", *COLUMNS]
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    for line in [header, *rows]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())

    not_killed = [
        (name, status_by_exit_code[exit_code])
        for _, data in results
        for name, exit_code in sorted(data.exit_code_by_key.items())
        if status_by_exit_code[exit_code] != "killed"
    ]
    if not_killed:
        print(f"\nnot killed ({len(not_killed)}):")
        for name, status in not_killed:
            print(f"  {name}: {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
