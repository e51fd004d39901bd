"""`alchemiser halt [--account ID] [--reason TEXT] [--liquidate] [--local]` and `alchemiser
resume [--account ID] [--reason TEXT] [--local]`: the kill switch (docs/trading-rules.md, Halt;
the emergency runbook is docs/operations.md, Halting trading).

By default they ask the strategy service (`POST /v1/halt`, `POST /v1/resume` at
ALCHEMISER_STRATEGY_URL), like `alchemiser trigger`, so the running execution and notify services
cancel the orders and announce it. `--local` is for the embedded mode, where no service runs: the
halt is recorded in the store of ALCHEMISER_DATABASE_URL and this process runs the services
in memory until they have cancelled the open orders, announced it and ended the liquidations.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.commands.settings import settings_or_exit

if TYPE_CHECKING:
    from services.embedded import EmbeddedSystem
    from shared.events.control import TradingHalted, TradingResumed
    from shared.settings import Settings

#: Exit code when the halt is recorded but the asked liquidation was refused (market closed,
#: close guard), as `alchemiser trigger` uses 3 for a refusal.
LIQUIDATION_REFUSED_EXIT_CODE = 3

Account = Annotated[
    str | None,
    typer.Option("--account", help="One account [default: every account of the installation]."),
]
Url = Annotated[
    str | None,
    typer.Option(help="Strategy service base URL [default: ALCHEMISER_STRATEGY_URL]."),
]
Local = Annotated[
    bool,
    typer.Option(
        "--local",
        help="No running services (embedded mode): record it in ALCHEMISER_DATABASE_URL's store "
        "and run the services here until the orders are cancelled and it is announced.",
    ),
]
Timeout = Annotated[float, typer.Option(help="HTTP timeout in seconds.")]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def halt(
    account: Account = None,
    reason: Annotated[
        str | None, typer.Option(help='Why [default: "halted by USER with alchemiser halt"].')
    ] = None,
    liquidate: Annotated[
        bool,
        typer.Option(
            "--liquidate",
            help="Also sell everything, through the normal execution path (market open only).",
        ),
    ] = False,
    local: Local = False,
    url: Url = None,
    timeout_s: Timeout = 30.0,
) -> None:
    """Stop trading: refuse new workflows, cancel this system's open orders, and with
    --liquidate sell everything. Announced by email and alerts."""
    settings = settings_or_exit()
    why = reason or f"halted by {_user()} with alchemiser halt"
    if local:
        from shared.events.control import TradingHalted

        halted = _run_local(settings, "halt", account=account, reason=why, liquidate=liquidate)
        assert isinstance(halted, TradingHalted), "a halt records TradingHalted"
        answer: dict[str, Any] = {
            "account_id": halted.account_id,
            "halted_since": halted.occurred_at.isoformat(),
            "reason": halted.reason,
            "accounts": list(halted.accounts),
            "liquidations": halted.liquidations,
            "liquidation_refused": halted.liquidation_refused,
        }
    else:
        body = {"account_id": account, "reason": why, "liquidate": liquidate}
        answer = _post(settings, "halt", body, url=url, timeout_s=timeout_s)
    scope = "every account" if answer["account_id"] == "*" else f"account {answer['account_id']}"
    typer.echo(f"halted {scope} since {answer['halted_since']}: {answer['reason']}")
    accounts = ", ".join(answer["accounts"]) or "none known yet"
    typer.echo(f"this system's open orders are cancelled on: {accounts}")
    for each, workflow_id in sorted(answer["liquidations"].items()):
        typer.echo(f"liquidation of {each}: workflow {workflow_id}")
    if answer["liquidation_refused"]:
        typer.echo(f"no liquidation: {answer['liquidation_refused']}", err=True)
        raise typer.Exit(LIQUIDATION_REFUSED_EXIT_CODE)


def resume(
    account: Account = None,
    reason: Annotated[
        str | None, typer.Option(help='Why [default: "resumed by USER with alchemiser resume"].')
    ] = None,
    local: Local = False,
    url: Url = None,
    timeout_s: Timeout = 30.0,
) -> None:
    """Allow new workflows again (every account by default, whatever halted it)."""
    settings = settings_or_exit()
    why = reason or f"resumed by {_user()} with alchemiser resume"
    if local:
        resumed = _run_local(settings, "resume", account=account, reason=why, liquidate=False)
        account_id, at = resumed.account_id, resumed.occurred_at.isoformat()
    else:
        body = {"account_id": account, "reason": why}
        answer = _post(settings, "resume", body, url=url, timeout_s=timeout_s)
        account_id, at = answer["account_id"], answer["resumed_at"]
    scope = "every account" if account_id == "*" else f"account {account_id}"
    typer.echo(f"resumed {scope} at {at}: {why}")


def _post(
    settings: Settings, action: str, body: dict[str, Any], *, url: str | None, timeout_s: float
) -> dict[str, Any]:
    import httpx

    from services.commands.failures import CommandFailedError, OptionError
    from shared.service.auth import WHERE_THE_TOKEN_IS, MissingApiTokenError, client_api_token

    try:
        token, source = client_api_token(settings)
    except MissingApiTokenError as error:
        raise MissingApiTokenError(
            f"{error}; in the embedded mode, with no services running, use "
            f"`alchemiser {action} --local`"
        ) from None
    base = (url or settings.strategy_url).rstrip("/")
    try:
        response = httpx.post(
            f"{base}/v1/{action}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
        )
    except httpx.HTTPError as error:
        raise CommandFailedError(
            f"cannot reach the strategy service at {base} ({error}); without running services "
            f"use `alchemiser {action} --local`"
        ) from None
    if response.status_code == 401:
        raise MissingApiTokenError(
            f"ALCHEMISER_API_TOKEN: {base} refused the token from {source} (401); "
            f"{WHERE_THE_TOKEN_IS}"
        )
    answer: dict[str, Any] = response.json()
    if response.status_code == 422:
        raise OptionError(f"--account: {answer.get('detail')}")
    if response.status_code not in (200, 202):
        raise CommandFailedError(f"{base} answered {response.status_code}: {answer.get('detail')}")
    return answer


def _run_local(
    settings: Settings, action: str, *, account: str | None, reason: str, liquidate: bool
) -> TradingHalted | TradingResumed:
    import asyncio
    import os

    from services.commands.failures import OptionError
    from services.commands.settings import secret_values
    from services.strategy.trigger import TriggerRejected
    from shared.logs import configure_logging

    # As `alchemiser run`: lines for a person; JSON logs only when asked for.
    level = settings.log_level if "ALCHEMISER_LOG_LEVEL" in os.environ else "WARNING"
    configure_logging(level, secrets=secret_values(settings))
    try:
        return asyncio.run(
            _record_embedded(settings, action, account=account, reason=reason, liquidate=liquidate)
        )
    except TriggerRejected as rejected:
        raise OptionError(f"--account: {rejected}") from None


async def _record_embedded(
    settings: Settings, action: str, *, account: str | None, reason: str, liquidate: bool
) -> TradingHalted | TradingResumed:
    """Record the halt or resume with the four services running in this process, and wait
    until they have answered it: each account's open orders cancelled, each channel's
    announcement and each liquidation ended and reported (or the workflow deadline passed)."""
    import asyncio
    import time

    from services.embedded import POLL_S, EmbeddedSystem, prepare_data
    from services.notify.service import configured_notifiers
    from services.strategy.halt import halt_trading, resume_trading
    from shared import market_clock
    from shared.marketdata.barstore import BarStore

    requested_by = f"alchemiser {action} --local"
    channels = len(configured_notifiers(settings))
    await prepare_data(settings, lambda line: typer.echo(line, err=True))
    system = EmbeddedSystem(settings)
    try:
        await system.start()
        event: TradingHalted | TradingResumed
        if action == "resume":
            event = await resume_trading(
                system.store,
                settings,
                account_id=account,
                reason=reason,
                requested_by=requested_by,
            )
        else:
            event = await halt_trading(
                system.store,
                settings,
                now=market_clock.market_now(settings, BarStore(settings.data_dir).last_session()),
                account_id=account,
                reason=reason,
                requested_by=requested_by,
                liquidate=liquidate,
            )
        system.relay.wake()
        deadline = time.monotonic() + settings.workflow_deadline_s
        while not await _answered(system, event, channels) and time.monotonic() < deadline:
            system.check_alive(event.correlation_id)
            await asyncio.sleep(POLL_S)
    finally:
        await system.stop()
    return event


async def _answered(
    system: EmbeddedSystem, event: TradingHalted | TradingResumed, channels: int
) -> bool:
    from shared.events import NotificationSent
    from shared.events.control import HaltOrdersCancelled, TradingHalted
    from shared.workflow import is_finished

    recorded = [r.event for r in await system.store.read_correlation(event.correlation_id)]
    if sum(isinstance(each, NotificationSent) for each in recorded) < channels:
        return False
    if not isinstance(event, TradingHalted):
        return True
    cancelled = {each.account_id for each in recorded if isinstance(each, HaltOrdersCancelled)}
    if not cancelled.issuperset(event.accounts):
        return False
    for workflow_id in event.liquidations.values():
        history = [r.event for r in await system.store.read_correlation(workflow_id)]
        notified = sum(isinstance(each, NotificationSent) for each in history)
        if not is_finished(history) or notified < channels:
            return False
    return True
