"""`/docs` works without internet access (Swagger UI's assets ship in the package) and the
OpenAPI schema declares the bearer scheme and a typed response for every endpoint."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.security.service_apps import DEFINITIONS, service_app


async def fetch(service: str, data_dir: Path, *paths: str) -> list[httpx.Response]:
    app, store = await service_app(service, data_dir)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            return [await client.get(path) for path in paths]
    finally:
        await store.close()


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_docs_load_every_asset_from_the_service_itself(service: str, tmp_path: Path) -> None:
    [page] = asyncio.run(fetch(service, tmp_path, "/docs"))
    assert page.status_code == 200
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert references, page.text
    assert not [ref for ref in references if "//" in ref], references
    assets = asyncio.run(fetch(service, tmp_path, *references))
    for reference, asset in zip(references, assets, strict=True):
        assert asset.status_code == 200, reference
    bundle = next(a for r, a in zip(references, assets, strict=True) if r.endswith(".js"))
    assert "SwaggerUIBundle" in bundle.text
    assert not re.findall(r"https?://[^\s\"'<>]+", page.text)


def schema_of(service: str, data_dir: Path) -> dict[str, Any]:
    [response] = asyncio.run(fetch(service, data_dir, "/openapi.json"))
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def typed(response: dict[str, Any]) -> bool:
    """A response with a body schema that says something (not `{}`)."""
    content = response.get("content", {})
    return bool(content) and all(media.get("schema") for media in content.values())


@pytest.mark.parametrize("service", sorted(DEFINITIONS))
def test_every_endpoint_has_typed_responses(service: str, tmp_path: Path) -> None:
    schema = schema_of(service, tmp_path)
    operations = [
        (f"{method.upper()} {path}", operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) >= 3
    for name, operation in operations:
        for code, response in operation["responses"].items():
            assert typed(response), f"{name} {code}: {response}"


def test_the_strategy_schema_declares_the_bearer_scheme_on_the_mutating_endpoint(
    tmp_path: Path,
) -> None:
    schema = schema_of("strategy", tmp_path)
    schemes = schema["components"]["securitySchemes"]
    [(name, scheme)] = schemes.items()
    assert scheme["type"] == "http"
    assert scheme["scheme"].lower() == "bearer"
    assert "ALCHEMISER_API_TOKEN" in scheme["description"]
    assert schema["paths"]["/v1/workflows"]["post"]["security"] == [{name: []}]
    assert "security" not in schema["paths"]["/v1/workflows/{workflow_id}"]["get"]
    start = schema["paths"]["/v1/workflows"]["post"]["responses"]
    assert {"200", "202", "401", "409", "422"} <= set(start)
