"""The web service: the read-only dashboard (docs/web.md). It consumes no event and appends
none; its one periodic task folds new events into the read models, and its pages read those."""

from __future__ import annotations

import httpx

from services.web.pages import Trigger, web_router
from services.web.read_models import catch_up_task
from services.web.readiness import ReadinessProbe, service_urls
from services.web.session import SessionSigner
from shared.service.auth import resolve_api_token
from shared.service.runtime import ServiceDefinition
from shared.settings import Settings

TRIGGER_TIMEOUT_S = 30.0


def strategy_service_trigger(settings: Settings, token: str) -> Trigger:
    """Start today's run through the strategy service's `POST /v1/workflows`, the one place
    that decides whether a run may start now (docs/web.md, Starting a run)."""

    async def trigger(account: str) -> tuple[int, str]:
        base = settings.strategy_url.rstrip("/")
        try:
            async with httpx.AsyncClient(timeout=TRIGGER_TIMEOUT_S) as client:
                response = await client.post(
                    f"{base}/v1/workflows",
                    json={"force": False, "account_id": account},
                    headers={"Authorization": f"Bearer {token}"},
                )
        except httpx.HTTPError as error:
            return 502, (
                f"cannot reach the strategy service at {base} ({type(error).__name__}); "
                "check ALCHEMISER_STRATEGY_URL"
            )
        body = response.json() if "json" in response.headers.get("content-type", "") else {}
        if response.status_code in (200, 202):
            started = "started" if response.status_code == 202 else "had already started today"
            return response.status_code, f"workflow {body['id']} {started} ({body['status']})"
        return response.status_code, str(body.get("detail", response.text))

    return trigger


def definition(
    settings: Settings, trigger: Trigger | None = None, *, embedded: bool = False
) -> ServiceDefinition:
    """`embedded`: `alchemiser web`'s dashboard, whose services run inside `alchemiser run`,
    not as services to ask for their readiness."""
    token = resolve_api_token(settings)
    signer = SessionSigner(token)
    starts = trigger or strategy_service_trigger(settings, token)
    probe = ReadinessProbe(None if embedded else service_urls(settings))
    return ServiceDefinition(
        name="web",
        event_types=(),
        handler=None,
        routers=lambda runtime: [web_router(runtime.store, signer, starts, settings, probe)],
        periodic=(catch_up_task(),),
    )
