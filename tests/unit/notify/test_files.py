"""`write_report_files`: the report `alchemiser run` leaves in `out/`, the same rendering as the
email."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.notify.files import write_report_files
from services.notify.rendering import render_workflow
from shared.settings import Settings
from tests.unit.notify import workflows


def test_writes_the_html_and_text_report_named_for_the_workflow(tmp_path: Path) -> None:
    workflow = workflows.success()

    html_path, text_path = write_report_files(workflow.events, tmp_path / "out", Settings())

    assert html_path == tmp_path / "out" / f"{workflow.id}.html"
    assert text_path == tmp_path / "out" / f"{workflow.id}.txt"
    email = render_workflow(workflow.events, neutral=False, default_live=False)
    assert html_path.read_text(encoding="utf-8") == email.html
    assert text_path.read_text(encoding="utf-8") == email.text


def test_no_events_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs the workflow's events"):
        write_report_files([], tmp_path, Settings())
