"""The FastAPI app every service runs: /healthz, /readyz, /metrics, its own routers, and a
lifespan that starts the service runtime and stops it cleanly on SIGTERM (uvicorn turns the
signal into lifespan shutdown). A task of the runtime that dies stops the process the same way:
a half-working service would keep taking deliveries it cannot finish, while a fresh process
picks every durable wait up from the store (docs/decisions.md)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Response, status
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from shared.service.openapi import error, serve_docs
from shared.service.runtime import ServiceRuntime

log = structlog.get_logger(__name__)

MAX_REQUEST_BODY_BYTES = 64 * 1024
"""The largest request body any endpoint accepts; a bigger one is answered 413 before it is read
in full (by its Content-Length, or as the streamed bytes pass the limit). The largest legitimate
body, a trigger's `{"force", "account_id"}`, is under 200 bytes."""


class ServiceStatus(BaseModel):
    status: str
    """`alive`, `ready` or `not ready`."""
    service: str
    reason: str | None = None
    """Why the service is not ready."""


def create_app(runtime: ServiceRuntime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        stop_on_failure = asyncio.create_task(_stop_process_when_a_task_dies(runtime))
        try:
            yield
        finally:
            stop_on_failure.cancel()
            await runtime.stop()

    app = FastAPI(
        title=f"Alchemiser {runtime.name} service",
        version="0.1.0",
        lifespan=lifespan,
        max_body_size=MAX_REQUEST_BODY_BYTES,
        responses={
            400: error("the body could not be read (not UTF-8 or malformed)"),
            413: error(f"the body is over {MAX_REQUEST_BODY_BYTES} bytes"),
        },
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.runtime = runtime
    serve_docs(app)

    @app.get(
        "/healthz", tags=["health"], response_model=ServiceStatus, response_model_exclude_none=True
    )
    async def healthz() -> dict[str, str]:
        """Alive: checks no dependency, so a database outage never restarts every pod."""
        return {"status": "alive", "service": runtime.name}

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=ServiceStatus,
        responses={
            503: {
                "model": ServiceStatus,
                "description": "a dependency is unavailable; the reason is given",
            }
        },
    )
    async def readyz() -> JSONResponse:
        readiness = await runtime.readiness()
        if readiness.ready:
            return JSONResponse({"status": "ready", "service": runtime.name})
        return JSONResponse(
            {"status": "not ready", "service": runtime.name, "reason": readiness.reason},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> Response:
        with contextlib.suppress(Exception):  # metrics must answer even with the database away
            runtime.metrics.outbox_lag.set(await runtime.store.outbox_lag())
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    for router in runtime.definition.routers(runtime):
        app.include_router(router)
    return app


async def _stop_process_when_a_task_dies(runtime: ServiceRuntime) -> None:
    failure = await runtime.wait_failed()
    log.error(
        "stopping the process so that its supervisor starts a fresh one",
        service=runtime.name,
        reason=failure,
    )
    signal.raise_signal(signal.SIGTERM)
