"""The dashboard's read models in the store's database (table `read_models`, migration 0004),
kept up to date from a checkpoint: the last position folded in, saved as the web service's
state document in the same transaction as the documents it produced (docs/web.md, Read models).

Catching up reads the next page of events after the checkpoint, loads the documents those
events touch, folds the events in (`services.web.fold`) and writes the changed documents and
the new checkpoint in one transaction. The checkpoint's version guards it: of two replicas (or
a replica and `alchemiser projections rebuild`) folding the same page, one commits and the
other's transaction records nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    MetaData,
    String,
    Table,
    delete,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.dml import Insert

from services.pnl import PnlLedger
from services.web.fold import ACCOUNT, Key, ReadModel, apply, finish, keys_touched
from services.web.pnl_book import pnl_document
from shared.eventstore import service_state
from shared.eventstore.port import EventStoreReader
from shared.eventstore.records import RecordedEvent
from shared.eventstore.schema import UtcDateTime
from shared.eventstore.store import SqlEventStore, UnitOfWork
from shared.service.runtime import Periodic, PeriodicContext, PeriodicOutcome, PeriodicRunner

SERVICE = "web"
CHECKPOINT_KEY = "read_models"
PNL_KEY = "pnl"
"""The state document holding the P&L projection (`services.pnl.PnlLedger`) as folded up to the
read models' checkpoint."""
PAGE_SIZE = 500
PNL_SAVE_PAGES = 40
"""Pages between two saves of the P&L projection: what a restart folds again into it, at most."""
FOLD_VERSION = 2
"""Of the documents' shapes: a checkpoint of another (or none, before version 2) makes the
service drop the documents and fold again from the first event."""
CATCH_UP_INTERVAL_S = 0.5
"""How often an idle web service looks for new events: what a live page lags behind by."""

metadata = MetaData()

read_models = Table(
    "read_models",
    metadata,
    Column("projection", String(30), primary_key=True),
    Column("key", String(300), primary_key=True),
    Column("account_id", String(100), nullable=False),
    Column("workflow_id", String(200), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("status", String(30)),
    Column("document", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
)
"""Created by Alembic revision 0004_read_models; must match it."""


@dataclass
class PnlCopy:
    """The P&L projection as folded up to the checkpoint `position`, kept between pages so a
    page neither loads nor saves the whole ledger: it is saved as the state document `web/pnl`
    every PNL_SAVE_PAGES pages and at the end of a catch-up, in the transaction of the
    checkpoint it matches. After a restart (or another replica's pages) the saved copy is
    loaded and moved on from its own last position to the checkpoint."""

    ledger: PnlLedger = field(default_factory=PnlLedger)
    position: int | None = None
    """The checkpoint the ledger matches; None: unknown (a page's transaction is under way or
    failed), load it again."""
    version: int = 0
    """Of the stored document."""
    unsaved: int = 0
    """Pages folded into the ledger since it was saved."""

    async def reach(self, store: EventStoreReader, after: int) -> None:
        """Make the ledger the projection folded up to the checkpoint `after`."""
        if self.position == after:
            return
        stored = await store.load_state(SERVICE, PNL_KEY)
        self.ledger = (
            PnlLedger() if stored is None else PnlLedger.from_document(json.dumps(stored.document))
        )
        self.version = 0 if stored is None else stored.version
        self.unsaved = 0
        position = self.ledger.last_position
        while position < after:
            page = await store.read_all(position, PAGE_SIZE)
            if not page:
                break
            for recorded in page:
                if recorded.position <= after:
                    self.ledger.apply(recorded)
            self.unsaved += 1
            position = page[-1].position
        self.position = after

    async def save(self, uow: UnitOfWork) -> None:
        """In the caller's transaction; a stored copy moved on by another writer raises
        StateVersionConflictError and leaves this one to be loaded again."""
        position, self.position = self.position, None
        self.version = await service_state.save(
            uow, SERVICE, PNL_KEY, json.loads(self.ledger.to_document()), self.version
        )
        self.unsaved, self.position = 0, position


def catch_up_task() -> Periodic:
    """The web service's periodic work: fold the next page of events, again at once while there
    are more; the P&L projection stays in memory between rounds."""
    pnl = PnlCopy()

    async def fold_next_page(context: PeriodicContext) -> AsyncGenerator[PeriodicOutcome, None]:
        stored = await context.store.load_state(SERVICE, CHECKPOINT_KEY)
        if stored is not None and stored.document.get("fold") != FOLD_VERSION:
            # documents of an older fold: make them again from the first event
            yield PeriodicOutcome(stream_id=f"{SERVICE}/{CHECKPOINT_KEY}", in_transaction=_reset)
            return
        after = 0 if stored is None else int(stored.document["last_position"])
        version = 0 if stored is None else stored.version
        await pnl.reach(context.store, after)
        page = await context.store.read_all(after, PAGE_SIZE)
        if page:
            yield PeriodicOutcome(
                stream_id=f"{SERVICE}/{CHECKPOINT_KEY}",
                in_transaction=lambda uow: fold_page(uow, page, version, pnl),
            )
        elif pnl.unsaved:  # caught up: save the ledger the last pages moved on
            yield PeriodicOutcome(stream_id=f"{SERVICE}/{PNL_KEY}", in_transaction=pnl.save)

    return Periodic("read-models", CATCH_UP_INTERVAL_S, fold_next_page)


async def fold_page(
    uow: UnitOfWork, page: Sequence[RecordedEvent], version: int, pnl: PnlCopy
) -> None:
    """Fold `page` into the stored documents and `pnl` and move the checkpoint past it; a
    checkpoint no longer at `version` raises StateVersionConflictError and the transaction
    records nothing (and `pnl` is loaded again)."""
    connection = uow.connection
    pnl.position = None  # until this transaction's writes are made
    wanted = keys_touched(page)
    models: dict[Key, ReadModel] = {}
    if wanted:
        rows = await connection.execute(
            select(read_models).where(
                tuple_(read_models.c.projection, read_models.c.key).in_(sorted(wanted))
            )
        )
        for row in rows:
            models[(row.projection, row.key)] = ReadModel(
                projection=row.projection,
                key=row.key,
                account_id=row.account_id,
                workflow_id=row.workflow_id,
                at=row.at.isoformat(),
                status=row.status,
                document=dict(row.document),
            )
    changed: set[Key] = set()
    for recorded in page:
        changed |= apply(models, recorded)
        pnl.ledger.apply(recorded)
    finish(models, changed)
    for key in [key for key in models if key[0] == ACCOUNT]:
        document = models[key].document
        book = pnl_document(pnl.ledger, key[1])
        if book != document["pnl"]:
            document["pnl"] = book
            changed.add(key)
    if changed:
        await connection.execute(
            _upsert(connection.dialect.name), [_row(models[key]) for key in sorted(changed)]
        )
    pnl.unsaved += 1
    if len(page) < PAGE_SIZE or pnl.unsaved >= PNL_SAVE_PAGES:
        await pnl.save(uow)
    await service_state.save(
        uow,
        SERVICE,
        CHECKPOINT_KEY,
        {"last_position": page[-1].position, "fold": FOLD_VERSION},
        version,
    )
    pnl.position = page[-1].position


def _upsert(dialect: str) -> Insert:
    """One statement writing a page's changed documents, new or not."""
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(read_models)
    return statement.on_conflict_do_update(
        index_elements=[read_models.c.projection, read_models.c.key],
        set_={
            name: statement.excluded[name]
            for name in ("account_id", "workflow_id", "at", "status", "document")
        },
    )


def _row(model: ReadModel) -> dict[str, Any]:
    return {
        "projection": model.projection,
        "key": model.key,
        "account_id": model.account_id,
        "workflow_id": model.workflow_id,
        "at": datetime.fromisoformat(model.at),
        "status": model.status,
        "document": model.document,
    }


async def catch_up(store: SqlEventStore) -> None:
    """Fold every event recorded so far (what the service does in the background)."""
    runner, task = PeriodicRunner(SERVICE, store), catch_up_task()
    while await runner.run_once(task):
        pass


async def rebuild(store: SqlEventStore) -> int:
    """Drop every document and the checkpoint in one transaction, then fold from the first
    event; returns the last position folded in."""
    async with store.unit_of_work() as uow:
        await _reset(uow)
    await catch_up(store)
    return await checkpoint(store)


async def _reset(uow: UnitOfWork) -> None:
    """Drop every document, the checkpoint (to 0, of this fold) and the P&L projection."""
    await uow.connection.execute(delete(read_models))
    for key, document in (
        (CHECKPOINT_KEY, {"last_position": 0, "fold": FOLD_VERSION}),
        (PNL_KEY, json.loads(PnlLedger().to_document())),
    ):
        stored = await service_state.load(uow, SERVICE, key)
        await service_state.save(
            uow, SERVICE, key, document, 0 if stored is None else stored.version
        )


async def checkpoint(store: SqlEventStore) -> int:
    stored = await store.load_state(SERVICE, CHECKPOINT_KEY)
    return 0 if stored is None else int(stored.document["last_position"])
