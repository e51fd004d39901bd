"""Every citation in the repository points at the repository's own docs.

The code was first written from a design handbook that is not part of the repository, so a
section number from it, or its file names, tell someone who cloned the repository nothing.
Citations name a heading of our own docs instead: `docs/<page>.md, <Heading>`, several headings
of one page joined by " / ", or the heading in double quotes. docs/decisions.md has one paragraph
per decision instead of headings, so there a citation names the decision's bold title. A renamed
heading must take its citations with it, so every cited heading has to exist.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Written as patterns so that this file does not contain what it looks for.
HANDBOOK = re.compile(
    r"\N{SECTION SIGN}|trading\s+spec|dsl\.md|trading\.md|\.\./shared", re.IGNORECASE
)
CITATION = re.compile(r"docs/([\w-]+)\.md,(?: |$)")
MARKDOWN_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
DECISION_TITLE = re.compile(r"^\*\*(.+?)\*\*")
NUMBERING = re.compile(r"^\d+\.\s+")


def tracked_text_files() -> list[tuple[str, str]]:
    """(path, text) of every tracked file that is text and ours: binary data (parquet, images)
    has no citations to check, and third-party files copied unchanged (a folder with a
    VENDORED.md) are not ours to change; the VENDORED.md itself is checked."""
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True
    ).stdout.decode()
    files = []
    for name in filter(None, listing.split("\0")):
        path = REPO / name
        if not path.is_file():
            continue
        if path.name != "VENDORED.md" and (path.parent / "VENDORED.md").is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            files.append((name, data.decode()))
        except UnicodeDecodeError:
            continue
    return files


@cache
def headings(page: str) -> frozenset[str]:
    """The headings of docs/<page>.md outside code blocks, each also without a leading "5. "
    step number; the bold titles of the decisions for docs/decisions.md."""
    path = REPO / "docs" / f"{page}.md"
    if not path.is_file():
        return frozenset()
    found: set[str] = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        heading = MARKDOWN_HEADING.match(line)
        if heading:
            found |= {heading.group(1), NUMBERING.sub("", heading.group(1))}
        title = DECISION_TITLE.match(line) if page == "decisions" else None
        if title:
            found.add(title.group(1).rstrip("."))
    return frozenset(found)


def citation_problem(page: str, rest: str) -> str | None:
    """What is wrong with a citation of `page` followed by `rest` (the line after "md, ")."""
    known = headings(page)
    if not known:
        return f"docs/{page}.md does not exist"
    if rest.startswith('"'):
        quoted, closed, _ = rest[1:].partition('"')
        if not closed:
            return "the quoted heading does not end on the same line"
        return None if quoted in known else f'no heading "{quoted}" in docs/{page}.md'
    while True:
        matches = [
            heading
            for heading in known
            if rest.startswith(heading)
            and not rest[len(heading) : len(heading) + 1].isalnum()
            and rest[len(heading) : len(heading) + 1] not in ("-", "_")
        ]
        if not matches:
            shown = rest.strip() or "(end of line: keep a citation on one line)"
            return f"no heading of docs/{page}.md at {shown!r}"
        rest = rest[len(max(matches, key=len)) :]
        if rest.strip() == "/":
            return "the citation goes on after the end of the line: keep it on one line"
        if not rest.startswith(" / "):
            return None
        rest = rest[3:]


def test_no_file_cites_the_handbook() -> None:
    offenders = [
        f"{name}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)!r}"
        for name, text in tracked_text_files()
        for match in HANDBOOK.finditer(text)
    ]
    assert offenders == [], "\n".join(offenders)


def test_every_cited_heading_exists() -> None:
    problems = []
    for name, text in tracked_text_files():
        for number, line in enumerate(text.splitlines(), start=1):
            for match in CITATION.finditer(line):
                problem = citation_problem(match.group(1), line[match.end() :])
                if problem:
                    problems.append(f"{name}:{number}: {problem}")
    assert problems == [], "\n".join(problems)


def test_a_heading_that_does_not_exist_is_caught() -> None:
    assert citation_problem("trading-rules", "Re-pegging).") is None
    assert citation_problem("trading-rules", "Quotes / Limit pricing / Re-pegging.") is None
    assert citation_problem("trading-rules", "Re-peg)") is not None
    assert citation_problem("trading-rules", "Quotes / Limit price") is not None
    assert citation_problem("trading-rules", "") is not None
    assert citation_problem("trading-rules", "Quotes /") is not None
    assert citation_problem("operations", '"Upgrading".') is None
    assert citation_problem("operations", '"Upgrade".') is not None
    assert citation_problem("no-such-page", "Anything") is not None
