from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from shared.logs import configure_logging


@pytest.fixture(autouse=True)
def logs_to_the_stderr_of_now() -> Iterator[None]:
    """Services log while these tests run (some from schemathesis' own event-loop thread, outside
    pytest's per-test capture); a logger configured by an earlier test may still point at a
    stream that test's capture has closed."""
    before = structlog.get_config()
    configure_logging("WARNING")
    yield
    structlog.configure(**before)
