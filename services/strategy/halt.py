"""The kill switch's rules (docs/trading-rules.md, Halt): recording a halt or a resume in the
control stream, and starting the halt's liquidations.

A halt is always recorded, at any hour: stopping must never be refused. Its liquidation is
another matter: orders sent with the market closed, or past the close guard, would wait for the
next session, so then the halt is recorded without a liquidation and says why
(`liquidation_refused`).
"""

from __future__ import annotations

import datetime as dt
import uuid

from services.strategy.trigger import check_account, trading_date
from shared import market_clock
from shared.events.control import (
    CONTROL_STREAM,
    EVERY_ACCOUNT,
    TradingHalted,
    TradingResumed,
)
from shared.events.workflow import WorkflowConfiguration, WorkflowStarted
from shared.eventstore.store import SqlEventStore
from shared.eventstore.workflow_queries import started_accounts
from shared.settings import Settings
from shared.workflow import WorkflowKind

LIQUIDATION_STREAM_PREFIX = "liquidation/"
DEFAULT_ACCOUNT = "default"
"""Always among the accounts of a halt of every account: it is the one account of Alpaca, and
the one every command trades unless told otherwise, whether or not it has run a workflow."""


def liquidation_refusal(now: dt.datetime, settings: Settings) -> str | None:
    """Why a liquidation may not start at `now`; None when the session is open and the close
    guard still far enough (docs/trading-rules.md, Close guard)."""
    session = market_clock.session_for(now)
    if session is None or not market_clock.is_open_at(now):
        return (
            f"the market is closed at {now.isoformat()}: a liquidation's orders would wait for "
            "the next session; run `alchemiser halt --liquidate` again once it is open"
        )
    guard = market_clock.session_close(session) - dt.timedelta(seconds=settings.exec_close_margin_s)
    if now >= guard:
        return (
            f"past the close guard at {now.isoformat()} (no new order in the session's last "
            f"{settings.exec_close_margin_s:g} s, ALCHEMISER_EXEC_CLOSE_MARGIN_S); run "
            "`alchemiser halt --liquidate` again after the next open"
        )
    return None


async def halt_trading(
    store: SqlEventStore,
    settings: Settings,
    *,
    now: dt.datetime,
    account_id: str | None,
    reason: str,
    requested_by: str,
    liquidate: bool,
) -> TradingHalted:
    """Record the halt of `account_id` (None: every account) and, with `liquidate`, one
    liquidation workflow per account, in one transaction: the liquidations start only if the
    halt is recorded, and a halt with `liquidate` never lacks them silently."""
    if account_id is not None:
        check_account(settings, account_id)
        accounts = [account_id]
    else:
        accounts = sorted({DEFAULT_ACCOUNT, *await started_accounts(store)})
    refused = liquidation_refusal(now, settings) if liquidate else None
    halt_id = uuid.uuid4()
    liquidations = (
        {account: str(uuid.uuid4()) for account in accounts}
        if liquidate and refused is None
        else {}
    )
    halted = TradingHalted(
        event_id=halt_id,
        correlation_id=str(uuid.uuid4()),
        account_id=account_id or EVERY_ACCOUNT,
        occurred_at=dt.datetime.now(dt.UTC),
        source="strategy",
        reason=reason,
        requested_by=requested_by,
        accounts=tuple(accounts),
        liquidations=liquidations,
        liquidation_refused=refused,
    )
    day = trading_date(now)
    starts = [
        WorkflowStarted(
            correlation_id=workflow_id,
            causation_id=str(halt_id),
            account_id=account,
            occurred_at=halted.occurred_at,
            source="strategy",
            workflow_type=WorkflowKind.LIQUIDATION.value,
            requested_by=requested_by,
            configuration=WorkflowConfiguration(live_trading=settings.is_live),
            trading_date=day,
            force=True,
            idempotency_key=f"liquidation:{halt_id}:{account}",
        )
        for account, workflow_id in liquidations.items()
    ]
    async with store.unit_of_work() as uow:
        await uow.append(CONTROL_STREAM, None, [halted])
        for started in starts:
            await uow.append(f"{LIQUIDATION_STREAM_PREFIX}{started.idempotency_key}", 0, [started])
    return halted


async def resume_trading(
    store: SqlEventStore,
    settings: Settings,
    *,
    account_id: str | None,
    reason: str,
    requested_by: str,
) -> TradingResumed:
    """Record the resume of `account_id` (None: every account, whatever halted it)."""
    if account_id is not None:
        check_account(settings, account_id)
    resumed = TradingResumed(
        correlation_id=str(uuid.uuid4()),
        account_id=account_id or EVERY_ACCOUNT,
        occurred_at=dt.datetime.now(dt.UTC),
        source="strategy",
        reason=reason,
        requested_by=requested_by,
    )
    await store.append(CONTROL_STREAM, None, [resumed])
    return resumed
