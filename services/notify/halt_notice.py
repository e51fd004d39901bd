"""The announcement of a halt or a resume (docs/trading-rules.md, Halt): a short message for
every channel, in the same shape as a run report so the same channels deliver it."""

from __future__ import annotations

import html

from services.notify.rendering import APP_NAME, RenderedReport
from shared.events.control import EVERY_ACCOUNT, TradingHalted, TradingResumed


def halt_notice(event: TradingHalted | TradingResumed, *, live: bool) -> RenderedReport:
    mode = "LIVE" if live else "PAPER"
    scope = "every account" if event.account_id == EVERY_ACCOUNT else f"account {event.account_id}"
    at = event.occurred_at.isoformat()
    if isinstance(event, TradingHalted):
        subject = f"[HALTED] {APP_NAME} - {mode} trading halted for {scope}"
        lines = [
            f"Trading is halted for {scope} since {at}: {event.reason}.",
            f"Requested by {event.requested_by}. New workflows are refused; this system's open "
            "orders are being cancelled.",
            *_liquidation_lines(event),
            "Resume with `alchemiser resume`"
            + (f" --account {event.account_id}" if event.account_id != EVERY_ACCOUNT else "")
            + " or POST /v1/resume.",
        ]
    else:
        subject = f"[RESUMED] {APP_NAME} - {mode} trading resumed for {scope}"
        lines = [
            f"Trading is resumed for {scope} since {at}: {event.reason}.",
            f"Requested by {event.requested_by}. New workflows are accepted again.",
        ]
    text = "\n".join(lines)
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    return RenderedReport(
        subject=subject,
        html=f"<html><body><h1>{html.escape(subject)}</h1>{body}</body></html>",
        text=f"{subject}\n\n{text}\n",
        summary=text,
    )


def _liquidation_lines(event: TradingHalted) -> list[str]:
    if event.liquidation_refused:
        return [f"No liquidation was started: {event.liquidation_refused}."]
    return [
        f"Liquidation of account {account}: workflow {workflow_id}."
        for account, workflow_id in sorted(event.liquidations.items())
    ]
