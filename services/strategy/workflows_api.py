"""`POST /v1/workflows` and `GET /v1/workflows/{id}`: start a run and show its status as the
store's events say it (`services.strategy.trigger` holds the rules of starting)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.strategy.api_views import (
    TriggerRefusal,
    TriggerResponse,
    WhyAnswer,
    WorkflowStatusView,
)
from services.strategy.trigger import (
    ACCOUNT_ID,
    DAY_STREAM_PREFIX,
    DRY_RUN_STREAM_PREFIX,
    TradingHaltedError,
    TriggerRefused,
    TriggerRejected,
    start_workflow,
)
from services.strategy.workflow_status import project_workflow
from shared import market_clock
from shared.eventstore.workflow_queries import started_in_streams
from shared.marketdata.barstore import BarStore
from shared.service.auth import BearerAuth, resolve_api_token
from shared.service.openapi import error
from shared.service.runtime import ServiceRuntime
from shared.why import explain


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: bool = False
    account_id: str = Field(default="default", pattern=ACCOUNT_ID.pattern)
    dry_run: bool = False
    """Signal, plan and preview the orders without sending any, at any time, outside the daily
    run key (docs/trading-rules.md, Dry runs)."""
    email: bool = False
    """Report the dry run on the configured channels; a run is always reported (it changes
    nothing for one)."""


def workflow_router(runtime: ServiceRuntime) -> APIRouter:
    settings = runtime.settings
    store = runtime.store
    bar_store = BarStore(settings.data_dir)
    guard = BearerAuth(resolve_api_token(settings))
    router = APIRouter(prefix="/v1/workflows", tags=["workflows"])

    @router.post(
        "",
        dependencies=[Depends(guard)],
        status_code=status.HTTP_202_ACCEPTED,
        response_model=TriggerResponse,
        responses={
            200: {
                "model": TriggerResponse,
                "description": "the run already started today for this account",
            },
            401: error("missing or wrong bearer token"),
            409: {
                "model": TriggerRefusal,
                "description": (
                    "outside the close window (the body names the next one), or the account is "
                    "halted (`detail` only: since when, why, how to resume)"
                ),
            },
        },
    )
    async def start(request: Annotated[TriggerRequest | None, Body()] = None) -> JSONResponse:
        trigger = request or TriggerRequest()
        now = market_clock.market_now(settings, bar_store.last_session())
        try:
            outcome = await start_workflow(
                store,
                settings,
                now=now,
                force=trigger.force,
                account_id=trigger.account_id,
                requested_by="api",
                dry_run=trigger.dry_run,
                email=trigger.email,
            )
        except TriggerRejected as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
        except TradingHaltedError as error:
            return JSONResponse({"detail": str(error)}, status_code=status.HTTP_409_CONFLICT)
        except TriggerRefused as error:
            return JSONResponse(
                {
                    "detail": str(error),
                    "next_window": {
                        "start": error.window_start.isoformat(),
                        "end": error.window_end.isoformat(),
                    },
                },
                status_code=status.HTTP_409_CONFLICT,
            )
        if outcome.created:
            runtime.relay.wake()
        return JSONResponse(
            {"id": outcome.workflow_id, "status": outcome.status},
            status_code=status.HTTP_202_ACCEPTED if outcome.created else status.HTTP_200_OK,
        )

    @router.get("", response_model=list[WorkflowStatusView], response_model_exclude_unset=True)
    async def list_workflows(date: dt.date) -> list[dict[str, object]]:
        """The runs and dry runs of one trading date, every account, oldest first."""
        views = []
        for workflow_id in await started_in_streams(
            store, *(f"{prefix}%:{date}" for prefix in (DAY_STREAM_PREFIX, DRY_RUN_STREAM_PREFIX))
        ):
            history = await store.read_correlation(workflow_id)
            view = project_workflow([recorded.event for recorded in history])
            if view is not None:
                views.append(view.as_json())
        return views

    @router.get(
        "/{workflow_id}",
        response_model=WorkflowStatusView,
        response_model_exclude_unset=True,
        responses={404: error("no such workflow")},
    )
    async def get_workflow(workflow_id: str, payloads: bool = False) -> dict[str, object]:
        """With `payloads`, each event carries its payload as `alchemiser events --format json`
        shows it, which is what `alchemiser trigger --wait` prints the run summary from."""
        view = project_workflow(
            [recorded.event for recorded in await store.read_correlation(workflow_id)]
        )
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no workflow with id {workflow_id}")
        return view.as_json(payloads=payloads)

    @router.get(
        "/{workflow_id}/why/{symbol}",
        response_model=WhyAnswer,
        responses={404: error("no such workflow")},
    )
    async def why(workflow_id: str, symbol: str) -> dict[str, Any]:
        """Why `symbol` was bought, sold or held: orders, plan item, and the strategies'
        decisions (branches and indicator values) that put it in the target."""
        history = [recorded.event for recorded in await store.read_correlation(workflow_id)]
        if not history:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no workflow with id {workflow_id}")
        return explain(history, symbol)

    return router
