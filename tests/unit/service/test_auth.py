from __future__ import annotations

import stat
from pathlib import Path

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from shared.service.auth import BearerAuth, MissingApiTokenError, resolve_api_token, token_file
from shared.settings import Settings


def test_paper_mode_generates_a_token_in_a_private_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    token = resolve_api_token(settings)
    path = token_file(settings)
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_api_token(settings) == token  # stable across restarts


def test_live_mode_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, broker="alpaca", trading_mode="live")
    with pytest.raises(MissingApiTokenError, match="ALCHEMISER_API_TOKEN"):
        resolve_api_token(settings)


def test_configured_token_wins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, api_token="configured-token-value")
    assert resolve_api_token(settings) == "configured-token-value"
    assert not token_file(settings).exists()


def _guarded_app(token: str) -> TestClient:
    app = FastAPI()

    @app.post("/mutate", dependencies=[Depends(BearerAuth(token))])
    async def mutate() -> dict[str, bool]:
        return {"ok": True}

    return TestClient(app)


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong", "Basic right-token", "Bearer", "right-token"],
    ids=["missing", "wrong", "other-scheme", "empty", "no-scheme"],
)
def test_mutating_endpoint_refuses_missing_or_wrong_token(header: str | None) -> None:
    client = _guarded_app("right-token")
    headers = {} if header is None else {"Authorization": header}
    response = client.post("/mutate", headers=headers)
    assert response.status_code == 401


def test_mutating_endpoint_accepts_the_token() -> None:
    client = _guarded_app("right-token")
    response = client.post("/mutate", headers={"Authorization": "Bearer right-token"})
    assert response.status_code == 200


def test_live_mode_refuses_the_public_paper_only_token(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, broker="alpaca", trading_mode="live", api_token="paper-only-token-x"
    )
    with pytest.raises(MissingApiTokenError, match="paper-only"):
        resolve_api_token(settings)
