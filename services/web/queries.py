"""What the pages read: documents of `read_models`, by index, never a replay of events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select

from services.web.fold import ACCOUNT, ACCOUNT_RUN, HALT, NOTIFICATION, ORDER, SIGNAL, WORKFLOW
from services.web.read_models import read_models
from shared.events.control import EVERY_ACCOUNT
from shared.eventstore.store import SqlEventStore

LIST_LIMIT = 50
"""Workflows per page of the list; older ones are a keyset page away (`before`)."""
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


async def overview(
    store: SqlEventStore,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Per account with a planned run: its latest run snapshot, its last workflow, its equity at
    each of its latest runs (oldest first, `[timestamp, equity]`), its P&L (None before a plan)
    and its halt (None while it may trade); and the latest halt or resume per account id. One
    statement on the primary key: one document per account and one per halt, maintained by the
    fold (docs/performance.md, Dashboard)."""
    query = select(read_models).where(read_models.c.projection.in_((ACCOUNT, HALT)))
    async with store.engine.connect() as connection:
        rows = list(await connection.execute(query))
    every = {row.key: _model(row) for row in rows if row.projection == HALT}
    found = {
        row.key: {
            **row.document,
            "equity": [point[:2] for point in row.document["equity"]],
            "halt": halt_of(every, row.key),
        }
        for row in sorted(rows, key=lambda row: row.key)
        if row.projection == ACCOUNT and row.document["latest"] is not None
    }
    return found, every


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


async def signals_of(store: SqlEventStore, file_name: str, limit: int) -> list[dict[str, Any]]:
    """The latest `limit` recorded signals of one strategy file of the config, oldest first. A
    signal names the file as the config lists it (`1-KMLM.clj`); the base name (`1-KMLM`) is
    matched too, as hand-built histories name it."""
    names = (file_name, file_name.removesuffix(".clj"))
    query = (
        select(read_models)
        .where(
            read_models.c.projection == SIGNAL,
            or_(*(read_models.c.key.like(f"%/{name}") for name in names)),
        )
        .order_by(read_models.c.at.desc())
        .limit(limit)
    )
    async with store.engine.connect() as connection:
        found = [_model(row) for row in await connection.execute(query)]
    return [model for model in reversed(found) if model["strategy"] in names]
