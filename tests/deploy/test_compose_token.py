"""compose.yaml's paper-only default token must never guard a live deployment."""

from __future__ import annotations

import pytest

from shared.service.auth import MissingApiTokenError, resolve_api_token
from shared.settings import load_settings
from tests.deploy.compose_file import application_services, load_compose


def test_live_mode_refuses_the_compose_paper_only_default_token() -> None:
    default = application_services(load_compose())["strategy"].environment["ALCHEMISER_API_TOKEN"]
    settings = load_settings(
        trading_mode="live", broker="alpaca", api_token=default, _env_file=None
    )
    with pytest.raises(MissingApiTokenError):
        resolve_api_token(settings)
