"""`alchemiser trigger [--force] [--account ID]`: ask the strategy service to start a run, as the
schedule does at 12:45 and 15:45 New York time (the service refuses the one outside the close
window, so exactly one of the two runs on a session)."""

from __future__ import annotations

from typing import Annotated

import typer

from services.commands.settings import settings_or_exit

#: Exit code of a refused trigger (closed day or outside the close window): expected twice a
#: day for a schedule that fires at both 12:45 and 15:45, so callers may treat it as success.
REFUSED_EXIT_CODE = 3


def trigger(
    force: Annotated[
        bool, typer.Option(help="Run even outside the close window or twice a day.")
    ] = False,
    account: Annotated[str, typer.Option(help="The account to run for.")] = "default",
    url: Annotated[
        str | None,
        typer.Option(help="Strategy service base URL [default: ALCHEMISER_STRATEGY_URL]."),
    ] = None,
    timeout_s: Annotated[float, typer.Option(help="HTTP timeout in seconds.")] = 30.0,
) -> None:
    """Start today's workflow through POST /v1/workflows."""
    import httpx

    from shared.service.auth import WHERE_THE_TOKEN_IS, MissingApiTokenError, client_api_token

    settings = settings_or_exit()
    token, source = client_api_token(settings)
    base = (url or settings.strategy_url).rstrip("/")
    try:
        response = httpx.post(
            f"{base}/v1/workflows",
            json={"force": force, "account_id": account},
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
        )
    except httpx.HTTPError as error:
        typer.echo(f"alchemiser trigger: cannot reach {base}: {error}", err=True)
        raise typer.Exit(1) from None
    body = (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else {"detail": response.text}
    )
    if response.status_code in (200, 202):
        state = "started" if response.status_code == 202 else "already started today"
        typer.echo(f"workflow {body['id']} {state} ({body['status']})")
        return
    if response.status_code == 401:
        raise MissingApiTokenError(
            f"ALCHEMISER_API_TOKEN: {base} refused the token from {source} (401); "
            f"{WHERE_THE_TOKEN_IS}"
        )
    if response.status_code == 409:
        typer.echo(f"not started: {body.get('detail')}", err=True)
        raise typer.Exit(REFUSED_EXIT_CODE)
    typer.echo(
        f"alchemiser trigger: {base} answered {response.status_code}: {body.get('detail')}",
        err=True,
    )
    raise typer.Exit(1)
