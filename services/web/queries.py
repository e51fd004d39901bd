"""What the pages read: documents of `read_models`, by index, never a replay of events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select

from services.web.fold import ACCOUNT_RUN, HALT, NOTIFICATION, ORDER, SIGNAL, WORKFLOW
from services.web.pnl_book import PNL
from services.web.read_models import read_models
from shared.events.control import EVERY_ACCOUNT
from shared.eventstore.store import SqlEventStore

LIST_LIMIT = 50
"""Workflows per page of the list; older ones are a keyset page away (`before`)."""
EQUITY_POINTS = 500
PROJECTIONS = (WORKFLOW, ORDER, SIGNAL, NOTIFICATION, ACCOUNT_RUN)


@dataclass(frozen=True)
class Cursor:
    """Where a page of the list ends: the last row's (at, key), newest first. In a URL it is
    `<ISO at>_<key>` (an ISO timestamp holds no underscore)."""

    at: dt.datetime
    key: str

    def __str__(self) -> str:
        return f"{self.at.isoformat()}_{self.key}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """Raises ValueError on anything but `<ISO at with offset>_<key>`."""
        at, separator, key = text.partition("_")
        parsed = dt.datetime.fromisoformat(at)
        if not separator or not key or parsed.tzinfo is None:
            raise ValueError(text)
        return cls(parsed, key)


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
    before: Cursor | None = None,
) -> tuple[list[dict[str, Any]], Cursor | None]:
    """A page of the latest workflows first, filtered by UTC start date, account and status,
    and where the next page starts (None on the last). Keyset paging on the (projection, at)
    index: a page costs the same however deep it is (docs/performance.md, Dashboard)."""
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
    if before is not None:
        query = query.where(
            or_(
                read_models.c.at < before.at,
                and_(read_models.c.at == before.at, read_models.c.key < before.key),
            )
        )
    query = query.order_by(read_models.c.at.desc(), read_models.c.key.desc()).limit(LIST_LIMIT + 1)
    async with store.engine.connect() as connection:
        rows = list(await connection.execute(query))
    page = [_model(row) for row in rows[:LIST_LIMIT]]
    more = len(rows) > LIST_LIMIT
    return page, Cursor(page[-1]["at"], page[-1]["key"]) if more else None


async def of_workflow(store: SqlEventStore, workflow_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every document of one workflow by projection; empty when it is unknown. The projections
    are named so that the (projection, workflow_id) index serves the query."""
    query = (
        select(read_models)
        .where(
            read_models.c.projection.in_(PROJECTIONS),
            read_models.c.workflow_id == workflow_id,
        )
        .order_by(read_models.c.at, read_models.c.key)
    )
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in PROJECTIONS}
    async with store.engine.connect() as connection:
        for row in await connection.execute(query):
            found[row.projection].append(_model(row))
    return found


async def accounts(store: SqlEventStore) -> dict[str, dict[str, Any]]:
    """Per account: its equity at each run (oldest first, the latest EQUITY_POINTS runs of all
    accounts), its latest run snapshot, its last workflow, its P&L (None before a plan) and its
    halt (None while it may trade). Three statements and the halts whatever the number of
    accounts: the equity points read two columns and one field, not whole documents; the latest
    documents are found by each account's newest `at`, an aggregate over the (projection,
    account_id, at) index (docs/performance.md, Dashboard)."""
    equity = read_models.c.document["equity"].as_string()
    runs = (
        select(read_models.c.account_id, read_models.c.at, equity)
        .where(read_models.c.projection == ACCOUNT_RUN)
        .order_by(read_models.c.at.desc())
        .limit(EQUITY_POINTS)
    )
    found: dict[str, dict[str, Any]] = {}
    async with store.engine.connect() as connection:
        for account_id, at, value in await connection.execute(runs):
            found.setdefault(account_id, {"equity": [], "last_workflow": None})["equity"].insert(
                0, (at.timestamp(), value)
            )
        newest = (
            select(
                read_models.c.projection,
                read_models.c.account_id,
                func.max(read_models.c.at).label("at"),
            )
            .where(read_models.c.projection.in_((ACCOUNT_RUN, WORKFLOW)))
            .group_by(read_models.c.projection, read_models.c.account_id)
            .subquery()
        )
        latest = (
            select(read_models)
            .join(
                newest,
                and_(
                    read_models.c.projection == newest.c.projection,
                    read_models.c.account_id == newest.c.account_id,
                    read_models.c.at == newest.c.at,
                ),
            )
            .order_by(read_models.c.key)  # of two at the same instant, the greater key wins
        )
        for row in await connection.execute(latest):
            if row.account_id in found:
                name = "latest" if row.projection == ACCOUNT_RUN else "last_workflow"
                found[row.account_id][name] = _model(row)
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
