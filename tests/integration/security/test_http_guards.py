"""The HTTP surface against hostile callers (issue "Reliability and security", item 5c-d): every
mutating endpoint of every service answers 401 without exactly the token, the token decision is
`hmac.compare_digest`'s alone (constant time), and a body over the documented limit is answered
413 whether it declares its length or streams it."""

from __future__ import annotations

import hmac
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from shared.service.app import MAX_REQUEST_BODY_BYTES
from tests.integration.security.service_apps import DEFINITIONS, TOKEN, service_app

READ_ONLY = {"GET", "HEAD", "OPTIONS"}


def mutating_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every operation in the app's OpenAPI that can change state, path
    parameters filled in."""
    routes: list[tuple[str, str]] = []
    for path, operations in app.openapi()["paths"].items():
        filled = re.sub(r"\{[^}]+\}", "x", path)
        routes.extend(
            (method.upper(), filled) for method in operations if method.upper() not in READ_ONLY
        )
    return routes


async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        yield client


@pytest.fixture
async def strategy(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app, store = await service_app("strategy", tmp_path)
    async for client in client_of(app):
        yield client
    await store.close()


WRONG_AUTHORIZATIONS = {
    "missing": None,
    "empty": "",
    "other-scheme": f"Basic {TOKEN}",
    "no-scheme": TOKEN,
    "wrong-same-length": "Bearer " + "x" * len(TOKEN),
    "prefix": f"Bearer {TOKEN[:-1]}",
    "extended": f"Bearer {TOKEN}0",
    "case-changed": f"Bearer {TOKEN.upper()}",
}


async def test_every_mutating_endpoint_of_every_service_refuses_a_missing_or_wrong_token(
    tmp_path: Path,
) -> None:
    checked = []
    for service in DEFINITIONS:
        app, store = await service_app(service, tmp_path / service)
        async for client in client_of(app):
            for method, path in mutating_routes(app):
                for case, authorization in WRONG_AUTHORIZATIONS.items():
                    headers = {} if authorization is None else {"Authorization": authorization}
                    answer = await client.request(method, path, json={}, headers=headers)
                    assert answer.status_code == 401, (service, method, path, case, answer.text)
                    assert answer.headers["www-authenticate"] == "Bearer"
                    assert TOKEN not in answer.text
                checked.append((service, method, path))
        await store.close()
    assert ("strategy", "POST", "/v1/workflows") in checked


async def test_the_token_decision_is_hmac_compare_digest_alone(
    strategy: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spy that says "equal" lets a wrong token in and one that says "different" keeps the
    right one out: no other comparison (a short-circuiting `==`) decides."""
    compared: list[tuple[bytes, bytes]] = []

    def says(verdict: bool) -> Callable[[bytes, bytes], bool]:
        def spy(given: bytes, expected: bytes) -> bool:
            compared.append((given, expected))
            return verdict

        return spy

    monkeypatch.setattr(hmac, "compare_digest", says(True))
    wrong = await strategy.post("/v1/workflows", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 202
    assert compared == [(b"nope", TOKEN.encode())]

    monkeypatch.setattr(hmac, "compare_digest", says(False))
    right = await strategy.post("/v1/workflows", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 401
    assert compared[-1] == (TOKEN.encode(), TOKEN.encode())


async def test_a_body_over_the_limit_is_refused_by_its_declared_length(
    strategy: httpx.AsyncClient,
) -> None:
    oversized = b"{" + b" " * MAX_REQUEST_BODY_BYTES + b"}"
    for authorization in (f"Bearer {TOKEN}", None):
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        answer = await strategy.post("/v1/workflows", content=oversized, headers=headers)
        assert answer.status_code == 413, answer.text


async def test_a_streamed_body_over_the_limit_is_refused_once_it_passes_the_limit(
    strategy: httpx.AsyncClient,
) -> None:
    chunk = b" " * 4096
    sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b"{"
        for _ in range(4 * MAX_REQUEST_BODY_BYTES // len(chunk)):
            sent += len(chunk)
            yield chunk
        yield b"}"

    answer = await strategy.post(
        "/v1/workflows",
        content=stream(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 413, answer.text
    assert "content-length" not in {name.lower() for name in answer.request.headers}


async def test_a_body_within_the_limit_is_read(strategy: httpx.AsyncClient) -> None:
    padded = b'{"force": true' + b" " * (MAX_REQUEST_BODY_BYTES - 100) + b"}"
    answer = await strategy.post(
        "/v1/workflows",
        content=padded,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 202, answer.text


@pytest.mark.parametrize("service", list(DEFINITIONS))
async def test_every_service_refuses_an_oversized_body_even_where_none_is_expected(
    service: str, tmp_path: Path
) -> None:
    app, store = await service_app(service, tmp_path)
    async for client in client_of(app):
        answer = await client.request(
            "GET", "/healthz", content=b"x" * (MAX_REQUEST_BODY_BYTES + 1)
        )
        assert answer.status_code == 413
    await store.close()
