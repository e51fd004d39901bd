"""What a service's OpenAPI schema and `/docs` page say (docs/operations.md, The HTTP API): the
bearer scheme, the body of every refusal, and Swagger UI served from the package, so the page
works without internet access."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel

from shared.service import swagger_ui

ASSETS_PATH = "/docs/assets"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
"""The vendored files the page loads (shared/service/swagger_ui/VENDORED.md); nothing else of
the folder is served."""

BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearerToken",
    description=(
        "ALCHEMISER_API_TOKEN of the service (a paper service without one generated it into "
        "DATA_DIR/api-token)"
    ),
)


class ErrorBody(BaseModel):
    """What every refusal answers (FastAPI's shape)."""

    detail: str


def error(description: str) -> dict[str, Any]:
    """An OpenAPI response entry for a refusal with `ErrorBody`."""
    return {"model": ErrorBody, "description": description}


def serve_docs(app: FastAPI) -> None:
    """`/docs` (Swagger UI) with its assets under `/docs/assets/`; create the app with
    `docs_url=None` so FastAPI's CDN page is not registered too."""
    folder = Path(swagger_ui.__file__).parent

    @app.get(f"{ASSETS_PATH}/{{name}}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no asset {name}")
        return FileResponse(folder / name, media_type=ASSETS[name])

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title}: API",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
