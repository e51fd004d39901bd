"""`alchemiser trigger [--force] [--dry-run [--email]] [--wait] [--account ID]`: ask the strategy
service to start a run, as the schedule does at 12:45 and 15:45 New York time (the service
refuses the one outside the close window, so exactly one of the two runs on a session), or a
dry run at any time; with `--wait`, follow it to its end and print its summary."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.commands.settings import settings_or_exit

if TYPE_CHECKING:
    import httpx

    from shared.events import Event

#: Exit code of a refused trigger (closed day or outside the close window): expected twice a
#: day for a schedule that fires at both 12:45 and 15:45, so callers may treat it as success.
REFUSED_EXIT_CODE = 3
WAIT_POLL_S = 1.0


def trigger(
    force: Annotated[
        bool, typer.Option(help="Run even outside the close window or twice a day.")
    ] = False,
    account: Annotated[str, typer.Option(help="The account to run for.")] = "default",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Signal, plan and preview the orders without sending any, at any time; "
            "never counts as today's run.",
        ),
    ] = False,
    email: Annotated[
        bool,
        typer.Option("--email", help="Report the dry run on the configured channels too."),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Wait for the run to end and print its summary (exit 1 unless completed).",
        ),
    ] = False,
    wait_timeout_s: Annotated[
        float, typer.Option(help="How long --wait waits for the end, in seconds.")
    ] = 1800.0,
    url: Annotated[
        str | None,
        typer.Option(help="Strategy service base URL [default: ALCHEMISER_STRATEGY_URL]."),
    ] = None,
    timeout_s: Annotated[float, typer.Option(help="HTTP timeout in seconds.")] = 30.0,
) -> None:
    """Start today's workflow, or a dry run, through POST /v1/workflows."""
    import httpx

    from services.commands.failures import OptionError
    from shared.service.auth import WHERE_THE_TOKEN_IS, MissingApiTokenError, client_api_token

    if email and not dry_run:
        raise OptionError(
            "--email: only a dry run is reported on request; a run is always reported on every "
            "configured channel (drop --email, or add --dry-run)"
        )
    settings = settings_or_exit()
    token, source = client_api_token(settings)
    base = (url or settings.strategy_url).rstrip("/")
    client = httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s
    )
    request: dict[str, Any] = {"force": force, "account_id": account}
    if dry_run:
        request |= {"dry_run": True, "email": email}
    try:
        response = client.post("/v1/workflows", json=request)
    except httpx.HTTPError as error:
        typer.echo(f"alchemiser trigger: cannot reach {base}: {error}", err=True)
        raise typer.Exit(1) from None
    body = _body(response)
    if response.status_code in (200, 202):
        state = "started" if response.status_code == 202 else "already started today"
        kind = "dry run" if dry_run else "workflow"
        typer.echo(f"{kind} {body['id']} {state} ({body['status']})")
        if wait:
            _wait_and_summarise(client, base, body["id"], wait_timeout_s)
        return
    if response.status_code == 401:
        raise MissingApiTokenError(
            f"ALCHEMISER_API_TOKEN: {base} refused the token from {source} (401); "
            f"{WHERE_THE_TOKEN_IS}"
        )
    if response.status_code == 409:
        typer.echo(f"not started: {body.get('detail')}", err=True)
        raise typer.Exit(REFUSED_EXIT_CODE)
    _fail(base, response, body)


def _body(response: httpx.Response) -> dict[str, Any]:
    if response.headers.get("content-type", "").startswith("application/json"):
        body: dict[str, Any] = response.json()
        return body
    return {"detail": response.text}


def _fail(base: str, response: httpx.Response, body: dict[str, Any]) -> None:
    typer.echo(
        f"alchemiser trigger: {base} answered {response.status_code}: {body.get('detail')}",
        err=True,
    )
    raise typer.Exit(1)


def _wait_and_summarise(
    client: httpx.Client, base: str, workflow_id: str, timeout_s: float
) -> None:
    """Poll GET /v1/workflows/{id} until the run ends, then print the summary `alchemiser run`
    prints, from its events with their payloads; exit 1 unless it completed."""
    import httpx

    from services.run_summary import summary_lines
    from services.strategy.workflow_status import project_workflow

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = client.get(f"/v1/workflows/{workflow_id}")
        except httpx.HTTPError as error:
            typer.echo(f"alchemiser trigger: cannot reach {base}: {error}", err=True)
            raise typer.Exit(1) from None
        body = _body(response)
        if response.status_code != 200:
            _fail(base, response, body)
        if body["status"] != "running":
            break
        if time.monotonic() > deadline:
            typer.echo(
                f"alchemiser trigger: workflow {workflow_id} still running after "
                f"{timeout_s:g} s (--wait-timeout-s); follow it with `alchemiser events "
                f"--workflow {workflow_id}`",
                err=True,
            )
            raise typer.Exit(1)
        time.sleep(WAIT_POLL_S)
    response = client.get(f"/v1/workflows/{workflow_id}", params={"payloads": "true"})
    body = _body(response)
    if response.status_code != 200:
        _fail(base, response, body)
    events = _events(body)
    view = project_workflow(events)
    assert view is not None, "a finished workflow has events"
    for line in summary_lines(view, events):
        typer.echo(line)
    if view.status != "completed":
        raise typer.Exit(1)


def _events(body: dict[str, Any]) -> list[Event]:
    """The workflow's events from the API's answer with payloads (decimals as it shows them)."""
    from shared.events import decode_document

    return [
        decode_document(
            {
                "event_id": row["event_id"],
                "event_type": row["event_type"],
                "schema_version": row["schema_version"],
                "correlation_id": body["id"],
                "causation_id": row["causation_id"],
                "account_id": body["account_id"],
                "occurred_at": row["occurred_at"],
                "source": row["source"],
                **row["payload"],
            }
        )
        for row in body["events"]
    ]
