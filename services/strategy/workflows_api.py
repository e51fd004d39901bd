"""`POST /v1/workflows` and `GET /v1/workflows/{id}`: start a run, once per trading day and
account unless forced, and show its status as the store's events say it.

Once-per-day is enforced by the store itself: an unforced start appends `WorkflowStarted` to
the day's stream expecting it to be empty, so of two racing triggers exactly one wins and the
other is answered with the run that won.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends, HTTPException, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.strategy.workflow_status import project_workflow
from shared.events.ids import daily_run_key
from shared.events.workflow import WorkflowConfiguration, WorkflowStarted
from shared.eventstore.errors import ConcurrencyError
from shared.service.auth import BearerAuth, resolve_api_token
from shared.service.runtime import ServiceRuntime
from shared.settings import BrokerKind, Settings

NEW_YORK = ZoneInfo("America/New_York")
ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: bool = False
    account_id: str = Field(default="default", min_length=1, max_length=64)


class TriggerResponse(BaseModel):
    id: str
    status: str


def market_now(settings: Settings) -> datetime:
    """'Now' for trading decisions: the simulated clock when one is set, else the real clock."""
    if settings.broker is BrokerKind.SIMULATED and settings.sim_now:
        moment = datetime.fromisoformat(settings.sim_now)
        return moment if moment.tzinfo else moment.replace(tzinfo=NEW_YORK)
    return datetime.now(UTC)


def workflow_router(runtime: ServiceRuntime) -> APIRouter:
    settings = runtime.settings
    store = runtime.store
    guard = BearerAuth(resolve_api_token(settings))
    router = APIRouter(prefix="/v1/workflows", tags=["workflows"])

    @router.post(
        "",
        dependencies=[Depends(guard)],
        status_code=status.HTTP_202_ACCEPTED,
        response_model=TriggerResponse,
        responses={
            200: {"description": "the run already started today for this account"},
            401: {"description": "missing or wrong bearer token"},
        },
    )
    async def start_workflow(
        request: Annotated[TriggerRequest | None, Body()] = None,
    ) -> JSONResponse:
        trigger = request or TriggerRequest()
        if not ACCOUNT_ID.match(trigger.account_id):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                "account_id: letters, digits, '_', '.', '-' only, at most 64 characters",
            )
        if settings.broker is BrokerKind.ALPACA and trigger.account_id != "default":
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                "account_id: the Alpaca broker serves one account, 'default'",
            )
        now = market_now(settings)
        trading_date = now.astimezone(NEW_YORK).date()
        key = daily_run_key(settings.trading_mode.value, trigger.account_id, trading_date)
        workflow_id = str(uuid.uuid4())
        started = WorkflowStarted(
            correlation_id=workflow_id,
            account_id=trigger.account_id,
            occurred_at=datetime.now(UTC),
            source="strategy",
            requested_by="api",
            configuration=WorkflowConfiguration(live_trading=settings.is_live),
            trading_date=trading_date,
            force=trigger.force,
            idempotency_key=key,
        )
        day_stream = f"daily/{key}"
        try:
            async with store.unit_of_work() as uow:
                await uow.append(day_stream, None if trigger.force else 0, [started])
        except ConcurrencyError:
            runs = await store.read_stream(day_stream)
            existing = runs[-1].event
            view = project_workflow(
                [
                    recorded.event
                    for recorded in await store.read_correlation(existing.correlation_id)
                ]
            )
            assert view is not None  # the stream holds its start event
            return JSONResponse({"id": view.id, "status": view.status}, status_code=200)
        runtime.relay.wake()
        return JSONResponse({"id": workflow_id, "status": "running"}, status_code=202)

    @router.get("/{workflow_id}", responses={404: {"description": "no such workflow"}})
    async def get_workflow(workflow_id: str) -> dict[str, object]:
        view = project_workflow(
            [recorded.event for recorded in await store.read_correlation(workflow_id)]
        )
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no workflow with id {workflow_id}")
        return view.as_json()

    return router
