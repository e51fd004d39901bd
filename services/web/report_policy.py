"""The Content-Security-Policy of one backtest report: the report is one self-contained page with
its scripts, styles and chart library inline, so it gets a policy of its own allowing exactly
those, by their SHA-256 hashes, and nothing else — the dashboard's strict policy stays for every
other answer (docs/web.md, Pages)."""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser


class _Inline(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: set[str] = set()
        self.styles: set[str] = set()
        self.attributes: set[str] = set()
        self._open: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes |= {value for name, value in attrs if name == "style" and value}
        if tag in ("script", "style"):
            self._open, self._text = tag, []

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            (self.scripts if tag == "script" else self.styles).add("".join(self._text))
            self._open = None


def _hashes(texts: set[str]) -> str:
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"
        for text in sorted(texts)
    )


def report_policy(page: str) -> str:
    """A policy allowing the page's own inline scripts, style elements and style attributes."""
    found = _Inline()
    found.feed(page)
    found.close()
    scripts = _hashes(found.scripts) or "'none'"
    styles = _hashes(found.styles) or "'none'"
    attributes = _hashes(found.attributes) or "'none'"
    return (
        f"default-src 'none'; script-src {scripts}; style-src-elem {styles}; "
        f"style-src-attr 'unsafe-hashes' {attributes}; img-src data:; "
        "frame-ancestors 'self'; form-action 'none'; base-uri 'none'"
    )
