from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

from shared.logs import configure_logging


@pytest.fixture(autouse=True)
def _restore_default_logging() -> Iterator[None]:
    """These tests point logging at pytest's captured stderr; put structlog back on its
    defaults afterwards so later tests never write to a closed stream."""
    yield
    structlog.reset_defaults()
    logging.basicConfig(stream=sys.stderr, force=True)


def test_log_lines_are_json_with_bound_correlation_and_event_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", service="portfolio")
    with structlog.contextvars.bound_contextvars(correlation_id="wf-1", event_id="ev-1"):
        structlog.get_logger("t").info("planned", symbols=3)
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["correlation_id"] == "wf-1"
    assert line["event_id"] == "ev-1"
    assert line["service"] == "portfolio"
    assert line["event"] == "planned"


def test_configured_secrets_are_masked_wherever_they_appear(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", secrets=["tok-123456"])
    structlog.get_logger("t").warning(
        "oops", detail="header Bearer tok-123456 sent", nested={"k": ["tok-123456"]}
    )
    err = capsys.readouterr().err
    assert "tok-123456" not in err
    assert "***" in err


def test_stdout_stays_clean(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    structlog.get_logger("t").info("to stderr")
    assert capsys.readouterr().out == ""
