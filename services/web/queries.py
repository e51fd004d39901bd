"""What the pages read: documents of `read_models`, by index, never a replay of events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from services.web.fold import ACCOUNT_RUN, HALT, NOTIFICATION, ORDER, SIGNAL, WORKFLOW
from services.web.pnl_book import PNL
from services.web.read_models import read_models
from shared.events.control import EVERY_ACCOUNT
from shared.eventstore.store import SqlEventStore

LIST_LIMIT = 200
EQUITY_POINTS = 500


def _model(row: Any) -> dict[str, Any]:
    return {
        **row.document,
        "key": row.key,
        "account_id": row.account_id,
        "workflow_id": row.workflow_id,
        "at": row.at,
        "status": row.status,
    }


async def workflows(
    store: SqlEventStore,
    *,
    day: dt.date | None = None,
    account: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """The latest workflows first, filtered by UTC start date, account and status."""
    query = select(read_models).where(read_models.c.projection == WORKFLOW)
    if day is not None:
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        query = query.where(
            read_models.c.at >= start, read_models.c.at < start + dt.timedelta(days=1)
        )
    if account:
        query = query.where(read_models.c.account_id == account)
    if status:
        query = query.where(read_models.c.status == status)
    query = query.order_by(read_models.c.at.desc()).limit(LIST_LIMIT)
    async with store.engine.connect() as connection:
        return [_model(row) for row in await connection.execute(query)]


async def of_workflow(store: SqlEventStore, workflow_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every document of one workflow by projection; empty when it is unknown."""
    query = (
        select(read_models)
        .where(read_models.c.workflow_id == workflow_id)
        .order_by(read_models.c.at, read_models.c.key)
    )
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in (WORKFLOW, ORDER, SIGNAL)}
    found[NOTIFICATION] = []
    found[ACCOUNT_RUN] = []
    async with store.engine.connect() as connection:
        for row in await connection.execute(query):
            found[row.projection].append(_model(row))
    return found


async def accounts(store: SqlEventStore) -> dict[str, dict[str, Any]]:
    """Per account: its equity at each run (oldest first), its latest run snapshot, its last
    workflow, its P&L (None before a plan) and its halt (None while it may trade)."""
    runs = (
        select(read_models)
        .where(read_models.c.projection == ACCOUNT_RUN)
        .order_by(read_models.c.at.desc())
        .limit(EQUITY_POINTS)
    )
    found: dict[str, dict[str, Any]] = {}
    async with store.engine.connect() as connection:
        for row in await connection.execute(runs):
            account = found.setdefault(row.account_id, {"equity": [], "latest": _model(row)})
            account["equity"].insert(0, (row.at.timestamp(), row.document["equity"]))
        for account_id, account in found.items():
            last = (
                await connection.execute(
                    select(read_models)
                    .where(
                        read_models.c.projection == WORKFLOW,
                        read_models.c.account_id == account_id,
                    )
                    .order_by(read_models.c.at.desc())
                    .limit(1)
                )
            ).first()
            account["last_workflow"] = None if last is None else _model(last)
        pnl = await connection.execute(select(read_models).where(read_models.c.projection == PNL))
        books = {row.account_id: _model(row) for row in pnl}
    every = await halts(store)
    for account_id, account in found.items():
        account["pnl"] = books.get(account_id)
        account["halt"] = halt_of(every, account_id)
    return found


async def halts(store: SqlEventStore) -> dict[str, dict[str, Any]]:
    """The latest halt or resume per account id (`*`: of every account)."""
    query = select(read_models).where(read_models.c.projection == HALT)
    async with store.engine.connect() as connection:
        return {row.key: _model(row) for row in await connection.execute(query)}


def halt_of(every: dict[str, dict[str, Any]], account_id: str) -> dict[str, Any] | None:
    """The halt in force for the account: the later of its own latest halt or resume and the
    one of every account decides (`shared.events.control.halt_of`)."""
    covering = [every[key] for key in (account_id, EVERY_ACCOUNT) if key in every]
    latest = max(covering, key=lambda model: model["at"], default=None)
    return latest if latest is not None and latest["status"] == "halted" else None


def halted(every: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The halts in force, each once: an account's own, or the one of every account."""
    return [
        halt
        for key in sorted(every)
        if (halt := halt_of(every, key)) is not None and halt["key"] == key
    ]


async def signals_of(store: SqlEventStore, strategy: str, limit: int) -> list[dict[str, Any]]:
    """The latest `limit` recorded signals of one strategy file (its base name), oldest first."""
    query = (
        select(read_models)
        .where(read_models.c.projection == SIGNAL, read_models.c.key.like(f"%/{strategy}"))
        .order_by(read_models.c.at.desc())
        .limit(limit)
    )
    async with store.engine.connect() as connection:
        found = [_model(row) for row in await connection.execute(query)]
    return [model for model in reversed(found) if model["strategy"] == strategy]
