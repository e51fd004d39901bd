"""`POST /v1/halt` and `POST /v1/resume`: the kill switch over HTTP, behind the bearer token
(docs/trading-rules.md, Halt; `services.strategy.halt` holds the rules)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from services.strategy.halt import halt_trading, resume_trading
from services.strategy.trigger import ACCOUNT_ID, TriggerRejected
from shared import market_clock
from shared.marketdata.barstore import BarStore
from shared.service.auth import BearerAuth, resolve_api_token
from shared.service.openapi import error
from shared.service.runtime import ServiceRuntime


class HaltRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str | None = Field(default=None, pattern=ACCOUNT_ID.pattern)
    """None: every account of the installation, and every account started later."""
    reason: str = Field(default="halted through POST /v1/halt", min_length=1)
    liquidate: bool = False


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str | None = Field(default=None, pattern=ACCOUNT_ID.pattern)
    reason: str = Field(default="resumed through POST /v1/resume", min_length=1)


class HaltAnswer(BaseModel):
    id: str
    """The halt's event id; its announcements and order cancels carry its correlation id."""
    correlation_id: str
    account_id: str
    """An account, or `*` for every account."""
    halted_since: str
    reason: str
    accounts: list[str]
    """The accounts whose open orders are cancelled."""
    liquidations: dict[str, str]
    """Account id → the id of its liquidation workflow."""
    liquidation_refused: str | None


class ResumeAnswer(BaseModel):
    id: str
    account_id: str
    resumed_at: str
    reason: str


def halt_router(runtime: ServiceRuntime) -> APIRouter:
    settings = runtime.settings
    store = runtime.store
    bar_store = BarStore(settings.data_dir)
    guard = BearerAuth(resolve_api_token(settings))
    router = APIRouter(prefix="/v1", tags=["halt"], dependencies=[Depends(guard)])
    refusals: dict[int | str, dict[str, Any]] = {401: error("missing or wrong bearer token")}

    @router.post(
        "/halt",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=HaltAnswer,
        responses=refusals,
    )
    async def halt(request: Annotated[HaltRequest | None, Body()] = None) -> HaltAnswer:
        """Refuse new workflows of the account (every account by default), cancel this
        system's open orders and, with `liquidate`, sell everything."""
        asked = request or HaltRequest()
        now = market_clock.market_now(settings, bar_store.last_session())
        try:
            halted = await halt_trading(
                store,
                settings,
                now=now,
                account_id=asked.account_id,
                reason=asked.reason,
                requested_by="api",
                liquidate=asked.liquidate,
            )
        except TriggerRejected as rejected:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(rejected)) from None
        runtime.relay.wake()
        return HaltAnswer(
            id=str(halted.event_id),
            correlation_id=halted.correlation_id,
            account_id=halted.account_id,
            halted_since=halted.occurred_at.isoformat(),
            reason=halted.reason,
            accounts=list(halted.accounts),
            liquidations=halted.liquidations,
            liquidation_refused=halted.liquidation_refused,
        )

    @router.post("/resume", response_model=ResumeAnswer, responses=refusals)
    async def resume(request: Annotated[ResumeRequest | None, Body()] = None) -> ResumeAnswer:
        """Allow new workflows of the account again (every account by default)."""
        asked = request or ResumeRequest()
        try:
            resumed = await resume_trading(
                store,
                settings,
                account_id=asked.account_id,
                reason=asked.reason,
                requested_by="api",
            )
        except TriggerRejected as rejected:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(rejected)) from None
        runtime.relay.wake()
        return ResumeAnswer(
            id=str(resumed.event_id),
            account_id=resumed.account_id,
            resumed_at=resumed.occurred_at.isoformat(),
            reason=resumed.reason,
        )

    return router
