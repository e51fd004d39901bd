"""The bearer token guarding mutating endpoints.

Live mode refuses to start without `ALCHEMISER_API_TOKEN`; paper mode generates one and keeps it
only in a 0600 file under the data dir, so the token itself is never printed or logged.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Annotated

import structlog
from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials

from shared.service.openapi import BEARER
from shared.settings import Settings, SettingsError

TOKEN_FILE_NAME = "api-token"
PAPER_ONLY_PREFIX = "paper-only"
"""compose.yaml's documented default token starts so; it is public, so live mode refuses it."""
log = structlog.get_logger(__name__)


class MissingApiTokenError(SettingsError):
    """No usable API token: live mode without one of its own (or with the public paper-only
    one), or a client that has none the services accept."""


def token_file(settings: Settings) -> Path:
    return settings.data_dir / TOKEN_FILE_NAME


def _configured_token(settings: Settings) -> str | None:
    """`ALCHEMISER_API_TOKEN` if set; in live mode it must be set and not the public default."""
    if settings.api_token is not None and settings.api_token.get_secret_value():
        token = settings.api_token.get_secret_value()
        if settings.is_live and token.startswith(PAPER_ONLY_PREFIX):
            raise MissingApiTokenError(
                "ALCHEMISER_API_TOKEN: the public paper-only default cannot guard live trading; "
                "set it to a long random secret"
            )
        return token
    if settings.is_live:
        raise MissingApiTokenError(
            "ALCHEMISER_API_TOKEN: required in live mode; set it to a long random secret"
        )
    return None


def resolve_api_token(settings: Settings) -> str:
    """The configured token, or in paper mode the generated one persisted under the data dir."""
    configured = _configured_token(settings)
    if configured is not None:
        return configured
    path = token_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # generated earlier, or by a service starting beside this one
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    log.info("api token generated for paper mode", token_file=str(path.resolve()))
    return token


WHERE_THE_TOKEN_IS = (
    "set ALCHEMISER_API_TOKEN to the strategy service's token (compose: ALCHEMISER_API_TOKEN in "
    ".env, else the paper-only default in compose.yaml; Kubernetes: the Secret alchemiser-api), "
    "or, for a paper service that generated its own, set ALCHEMISER_DATA_DIR to the service's "
    "data dir, whose api-token file holds it"
)


def client_api_token(settings: Settings) -> tuple[str, str]:
    """The token a client sends and where it came from: the configured one, else the file a
    paper service generated under the same data dir. Never a new one: the running service
    would refuse it."""
    configured = _configured_token(settings)
    if configured is not None:
        return configured, "ALCHEMISER_API_TOKEN"
    path = token_file(settings).resolve()
    if not path.is_file():
        raise MissingApiTokenError(
            f"ALCHEMISER_API_TOKEN: not set, and no token file at {path}; {WHERE_THE_TOKEN_IS}"
        )
    return path.read_text(encoding="utf-8").strip(), f"the token file {path}"


class BearerAuth:
    """FastAPI dependency: 401 unless the request carries exactly the token (constant time). It
    reads the header through `BEARER`, so the OpenAPI schema declares the scheme on every
    endpoint it guards."""

    def __init__(self, token: str) -> None:
        self._expected = token.encode("utf-8")

    async def __call__(
        self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
    ) -> None:
        given = "" if credentials is None else credentials.credentials.strip()
        if credentials is None or not hmac.compare_digest(given.encode("utf-8"), self._expected):
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
