"""The dashboard's routes: sign-in, the pages (server-rendered Jinja2, htmx for the live part),
their JSON twins for a bearer-token client, the live stream of a running workflow and the one
write, "start today's run" (docs/web.md).

Every page reads the read models (`services.web.queries`), never a workflow's events.

No `from __future__ import annotations` here: FastAPI resolves the routes' annotations, which
name the router's local dependencies, when the routes are declared.
"""

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from importlib import resources
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from services.web import queries
from services.web.file_pages import add_file_pages
from services.web.fold import WORKFLOW
from services.web.readiness import ReadinessProbe
from services.web.rendering import FRAMING_POLICY, render, secure
from services.web.report_policy import report_policy
from services.web.session import COOKIE, LIFETIME_S, Session, SessionSigner
from shared import market_clock, sent_reports
from shared.eventstore.store import SqlEventStore
from shared.settings import Settings
from shared.why import explain

LIVE_POLL_S = 1.0
"""How often the live stream of a running workflow looks at its read model."""
STATIC = {
    "htmx.min.js": ("services.web.static", "text/javascript"),
    "app.js": ("services.web.static", "text/javascript"),
    "web.css": ("services.web.static", "text/css"),
    # the backtest report's vendored copy: one uPlot in the repository
    "uPlot.iife.min.js": ("services.backtest.vendor", "text/javascript"),
    "uPlot.min.css": ("services.backtest.vendor", "text/css"),
}
STATUSES = ("running", "completed", "failed")
T = TypeVar("T")

Trigger = Callable[[str], Awaitable[tuple[int, str]]]
"""Start today's run for an account; answers an HTTP-like status and a one-line message."""


def web_router(
    store: SqlEventStore,
    signer: SessionSigner,
    trigger: Trigger,
    settings: Settings,
    probe: ReadinessProbe,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def session_of(request: Request) -> Session | None:
        return signer.read(request.cookies.get(COOKIE))

    def page_session(request: Request) -> Session:
        session = session_of(request)
        if session is None:
            raise HTTPException(
                status.HTTP_303_SEE_OTHER, "sign in first", headers={"Location": "/login"}
            )
        return session

    def api_client(request: Request) -> None:
        """A JSON endpoint: the session cookie or the bearer token."""
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and signer.token_matches(given):
            return
        if session_of(request) is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    PageSession = Annotated[Session, Depends(page_session)]
    add_file_pages(router, store, settings, page_session)

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        return render("login.html", signed_in=False, error=None)

    @router.post("/login")
    async def login(request: Request) -> Response:
        fields = parse_qs((await request.body()).decode("utf-8", "replace"))
        given = fields.get("token", [""])[0]
        if not signer.token_matches(given):
            return render(
                "login.html", status.HTTP_401_UNAUTHORIZED, signed_in=False, error="wrong token"
            )
        response = secure(RedirectResponse("/", status.HTTP_303_SEE_OTHER))
        response.set_cookie(
            COOKIE,
            signer.issue(),
            max_age=LIFETIME_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout")
    async def logout(request: Request, session: PageSession) -> Response:
        await _check_csrf(request, session)
        response = secure(RedirectResponse("/login", status.HTTP_303_SEE_OTHER))
        response.delete_cookie(COOKIE, httponly=True, samesite="strict")
        return response

    @router.get("/")
    async def overview(session: PageSession) -> Response:
        found, every = await queries.overview(store)
        banner = queries.halted(every)
        return render(
            "overview.html",
            signed_in=True,
            csrf=session.csrf,
            accounts=found,
            halted=banner,
            services=await probe.states(),
            next_run=_next_run(settings),
        )

    @router.get("/workflows")
    async def workflows_page(
        session: PageSession,
        date: Annotated[str, Query()] = "",
        account: Annotated[str, Query()] = "",
        status_: Annotated[str, Query(alias="status")] = "",
        before: Annotated[str, Query()] = "",
    ) -> Response:
        day = _day(date)
        rows, older = await queries.workflows(
            store,
            day=day,
            account=account or None,
            status=status_ or None,
            before=_cursor(before),
        )
        filters = {"date": date, "account": account, "status": status_}
        return render(
            "workflows.html",
            signed_in=True,
            csrf=session.csrf,
            workflows=rows,
            filters=filters,
            statuses=STATUSES,
            older=None if older is None else {**filters, "before": str(older)},
        )

    @router.get("/workflows/{workflow_id}")
    async def workflow_page(
        workflow_id: str, session: PageSession, fragment: bool = False
    ) -> Response:
        found = await queries.of_workflow(store, workflow_id)
        if not found[WORKFLOW]:
            return render(
                "missing.html", 404, signed_in=True, csrf=session.csrf, workflow_id=workflow_id
            )
        context = {
            "signed_in": True,
            "csrf": session.csrf,
            "email": await sent_reports.load(store, workflow_id),
            **_workflow_view(found),
        }
        return render(
            "workflow_body.html" if fragment else "workflow.html",
            policy=FRAMING_POLICY,
            **context,
        )

    @router.get("/workflows/{workflow_id}/email")
    async def email(workflow_id: str, session: PageSession) -> Response:
        """The HTML report as notify sent it, for the sandboxed frame of the workflow's page,
        under a policy allowing exactly its own inline styles."""
        sent = await sent_reports.load(store, workflow_id)
        if sent is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no report sent for {workflow_id}")
        page = str(sent["html"])
        return secure(HTMLResponse(page), policy=report_policy(page), frame_options="SAMEORIGIN")

    @router.get("/workflows/{workflow_id}/why/{symbol}")
    async def why_page(workflow_id: str, symbol: str, session: PageSession) -> Response:
        answer = await _why(store, workflow_id, symbol)
        if answer is None:
            return render(
                "missing.html", 404, signed_in=True, csrf=session.csrf, workflow_id=workflow_id
            )
        return render("why.html", signed_in=True, csrf=session.csrf, why=answer)

    @router.get("/workflows/{workflow_id}/live")
    async def live(workflow_id: str, session: PageSession) -> Response:
        """Server-sent events: `changed` whenever the workflow's read model moved on, then
        `finished` once it ended."""

        async def changes() -> AsyncIterator[str]:
            seen = -1
            while True:
                found = await queries.of_workflow(store, workflow_id)
                workflow = found[WORKFLOW][0] if found[WORKFLOW] else None
                length = len(workflow["timeline"]) if workflow else 0
                if length != seen:
                    seen = length
                    yield f"event: changed\ndata: {length}\n\n"
                if workflow is not None and workflow["status"] != "running":
                    yield "event: finished\ndata: end\n\n"
                    return
                await asyncio.sleep(LIVE_POLL_S)

        return secure(StreamingResponse(changes(), media_type="text/event-stream"))

    @router.post("/trigger")
    async def start_run(request: Request, session: PageSession) -> Response:
        fields = await _check_csrf(request, session)
        if fields.get("confirm", [""])[0] != "yes":
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "confirm the start first")
        account = fields.get("account", ["default"])[0]
        code, message = await trigger(account)
        return render(
            "triggered.html",
            code,
            signed_in=True,
            csrf=session.csrf,
            refused=code >= 400,
            message=message,
        )

    @router.get("/api/workflows", dependencies=[Depends(api_client)])
    async def workflows_json(
        request: Request,
        date: str = "",
        account: str = "",
        status_: Annotated[str, Query(alias="status")] = "",
        before: str = "",
    ) -> Response:
        """A page of the list; a `Link: <...>; rel="next"` header names the next one."""
        rows, older = await queries.workflows(
            store,
            day=_day(date),
            account=account or None,
            status=status_ or None,
            before=_cursor(before),
        )
        response = JSONResponse(json.loads(json.dumps(rows, default=str)))
        if older is not None:
            following = request.url.include_query_params(before=str(older))
            response.headers["Link"] = f'<{following.path}?{following.query}>; rel="next"'
        return secure(response)

    @router.get("/api/workflows/{workflow_id}", dependencies=[Depends(api_client)])
    async def workflow_json(workflow_id: str) -> Response:
        found = await queries.of_workflow(store, workflow_id)
        if not found[WORKFLOW]:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no workflow with id {workflow_id}")
        return secure(JSONResponse(json.loads(json.dumps(found, default=str))))

    @router.get("/api/workflows/{workflow_id}/why/{symbol}", dependencies=[Depends(api_client)])
    async def why_json(workflow_id: str, symbol: str) -> Response:
        answer = await _why(store, workflow_id, symbol)
        if answer is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no workflow with id {workflow_id}")
        return secure(JSONResponse(answer))

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no static file {name}")
        package, media_type = STATIC[name]
        body = resources.files(package).joinpath(name).read_bytes()
        response = Response(body, media_type=media_type)
        response.headers["Cache-Control"] = "public, max-age=3600"
        return secure(response, no_store=False)

    return router


async def _check_csrf(request: Request, session: Session) -> dict[str, list[str]]:
    """The form's fields, once its `csrf` field is the session's token; 403 otherwise."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    given = fields.get("csrf", [""])[0]
    if not given or given != session.csrf:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    return fields


async def _why(store: SqlEventStore, workflow_id: str, symbol: str) -> dict[str, Any] | None:
    """The strategy service's why-answer (`shared.why.explain`) from the one workflow's recorded
    events: a read by correlation id, bounded by that workflow's size (docs/decisions.md)."""
    history = [recorded.event for recorded in await store.read_correlation(workflow_id)]
    return explain(history, symbol) if history else None


def _next_run(settings: Settings) -> dict[str, dt.datetime]:
    """When the next scheduled trigger can start a run: the next close window on the exchange
    calendar, early closes included, as the strategy service decides it
    (docs/trading-rules.md, Close window)."""
    start, last_start = market_clock.next_close_window(
        dt.datetime.now(dt.UTC), market_clock.last_start_cutoff(settings)
    )
    return {
        "start": start,
        "last_start": last_start,
        "local": start.astimezone(market_clock.NEW_YORK),
    }


def _day(text: str) -> dt.date | None:
    return _parsed(text, dt.date.fromisoformat, f"date {text!r}: use YYYY-MM-DD")


def _cursor(text: str) -> queries.Cursor | None:
    return _parsed(
        text,
        queries.Cursor.parse,
        f"before {text!r}: use the value of the list's link to older workflows",
    )


def _parsed(text: str, parse: Callable[[str], T], message: str) -> T | None:
    """A query parameter: None when empty, 422 with `message` when `parse` refuses it."""
    if not text:
        return None
    try:
        return parse(text)
    except ValueError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message) from None


def _workflow_view(found: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    workflow = found[WORKFLOW][0]
    return {
        "workflow": workflow,
        "waterfall": _waterfall(workflow),
        "orders": found["order"],
        "signals": found["signal"],
        "notifications": found["notification"],
        "after": _after(workflow),
    }


def _waterfall(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Each step as a bar: its offset and length in percent of the workflow's span so far."""
    started = dt.datetime.fromisoformat(workflow["started_at"])
    times = [dt.datetime.fromisoformat(entry["at"]) for entry in workflow["timeline"]]
    span = max((max(times) - started).total_seconds(), 0.001) if times else 0.001
    bars = []
    for step in workflow.get("steps", []):
        start = (dt.datetime.fromisoformat(step["start"]) - started).total_seconds()
        end = (
            (dt.datetime.fromisoformat(step["end"]) - started).total_seconds()
            if step["end"]
            else span
        )
        bars.append(
            {
                **step,
                "offset_s": start,
                "duration_s": end - start,
                "x": 100 * start / span,
                "width": max(100 * (end - start) / span, 0.5),
            }
        )
    return bars


def _after(workflow: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(symbol, quantity before, quantity after) — the planning snapshot's quantities, and
    those plus this run's recorded fills."""
    before = {
        p["symbol"]: Decimal(p["qty"]) for p in workflow.get("before", {}).get("positions", [])
    }
    after = dict(before)
    for symbol, qty, _ in workflow["fills"].values():
        after[symbol] = after.get(symbol, Decimal(0)) + Decimal(qty)
    return [
        (symbol, str(before.get(symbol, 0)), str(after.get(symbol, 0))) for symbol in sorted(after)
    ]
