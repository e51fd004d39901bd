"""The report as files, `out/<workflow_id>.html` and `.txt`: what `alchemiser run` leaves
behind whether or not SMTP is configured (docs/trading-rules.md, Triggers)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from services.notify.rendering import render_workflow
from services.pnl import PnlView
from shared.events import Event
from shared.settings import Settings


def write_report_files(
    events: Sequence[Event], out_dir: Path, settings: Settings, pnl: PnlView | None = None
) -> tuple[Path, Path]:
    """Render the workflow's report (the same rendering as the email) and write it; returns the
    HTML and text paths. The events are the workflow's, in causal order."""
    if not events:
        raise ValueError("write_report_files needs the workflow's events; none were given")
    rendered = render_workflow(
        events, neutral=settings.email_neutral_mode, default_live=settings.is_live, pnl=pnl
    )
    workflow_id = events[0].correlation_id
    if "/" in workflow_id or workflow_id.startswith("."):
        raise ValueError(f"workflow id {workflow_id!r} cannot be used as a file name")
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"{workflow_id}.html"
    text_path = out_dir / f"{workflow_id}.txt"
    html_path.write_text(rendered.html, encoding="utf-8")
    text_path.write_text(rendered.text, encoding="utf-8")
    return html_path, text_path
