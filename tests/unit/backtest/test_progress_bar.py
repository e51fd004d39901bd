"""The backtest's progress bar: on a terminal once a run has taken a second, never in captured
output, where its escape codes would only corrupt a log."""

from __future__ import annotations

import io
import sys

import pytest

from services.commands import backtest


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "after_s", "shown"),
    [(Terminal(), 0.0, True), (Terminal(), 60.0, False), (io.StringIO(), 0.0, False)],
    ids=["terminal-after-the-delay", "terminal-before-the-delay", "captured"],
)
def test_the_bar_shows_on_a_terminal_once_the_delay_has_passed(
    monkeypatch: pytest.MonkeyPatch, stream: io.StringIO, after_s: float, shown: bool
) -> None:
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(backtest, "PROGRESS_AFTER_S", after_s)

    bar = backtest._ProgressBar()
    bar(250, 1000)
    bar.close()

    assert ("simulating sessions" in stream.getvalue()) is shown
