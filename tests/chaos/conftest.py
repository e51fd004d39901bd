from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.cluster import sample_bars


@pytest.fixture(scope="session")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_bars(tmp_path_factory.mktemp("chaos-bars"))
