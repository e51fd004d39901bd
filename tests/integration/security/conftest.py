from __future__ import annotations

import pytest

from shared.logs import configure_logging


@pytest.fixture(autouse=True)
def logs_to_the_stderr_of_now() -> None:
    """Services log while these tests run, some from schemathesis' own event-loop thread, outside
    pytest's per-test capture: bind logging to this test's stderr (tests/conftest.py puts the
    previous configuration back afterwards)."""
    configure_logging("WARNING")
