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
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB

from services.pnl import PnlLedger
from services.web.fold import Key, ReadModel, apply, keys_touched
from services.web.pnl_book import pnl_models
from shared.eventstore import service_state
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


async def _fold_next_page(context: PeriodicContext) -> AsyncGenerator[PeriodicOutcome, None]:
    stored = await context.store.load_state(SERVICE, CHECKPOINT_KEY)
    after = 0 if stored is None else int(stored.document["last_position"])
    version = 0 if stored is None else stored.version
    page = await context.store.read_all(after, PAGE_SIZE)
    if page:
        yield PeriodicOutcome(
            stream_id=f"{SERVICE}/{CHECKPOINT_KEY}",
            in_transaction=lambda uow: fold_page(uow, page, version),
        )


CATCH_UP = Periodic("read-models", CATCH_UP_INTERVAL_S, _fold_next_page)
"""The web service's periodic work: fold the next page of events, again at once while there
are more."""


async def fold_page(uow: UnitOfWork, page: Sequence[RecordedEvent], version: int) -> None:
    """Fold `page` into the stored documents and move the checkpoint past it; a checkpoint no
    longer at `version` raises StateVersionConflictError and the transaction records nothing."""
    connection = uow.connection
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
    for model in await _fold_pnl(uow, page):
        models[(model.projection, model.key)] = model
        changed.add((model.projection, model.key))
    if changed:
        keys = sorted(changed)
        await connection.execute(
            delete(read_models).where(tuple_(read_models.c.projection, read_models.c.key).in_(keys))
        )
        await connection.execute(insert(read_models), [_row(models[key]) for key in keys])
    await service_state.save(
        uow, SERVICE, CHECKPOINT_KEY, {"last_position": page[-1].position}, version
    )


async def _fold_pnl(uow: UnitOfWork, page: Sequence[RecordedEvent]) -> list[ReadModel]:
    """Move the P&L projection past `page` (saved in this transaction) and make the P&L
    documents of the accounts the page touched."""
    stored = await service_state.load(uow, SERVICE, PNL_KEY)
    ledger = PnlLedger() if stored is None else PnlLedger.from_document(json.dumps(stored.document))
    for recorded in page:
        ledger.apply(recorded)
    await service_state.save(
        uow,
        SERVICE,
        PNL_KEY,
        json.loads(ledger.to_document()),
        0 if stored is None else stored.version,
    )
    return list(pnl_models(ledger, (recorded.event.account_id for recorded in page)))


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
    runner = PeriodicRunner(SERVICE, store)
    while await runner.run_once(CATCH_UP):
        pass


async def rebuild(store: SqlEventStore) -> int:
    """Drop every document and the checkpoint in one transaction, then fold from the first
    event; returns the last position folded in."""
    async with store.unit_of_work() as uow:
        stored = await service_state.load(uow, SERVICE, CHECKPOINT_KEY)
        ledger = await service_state.load(uow, SERVICE, PNL_KEY)
        await uow.connection.execute(delete(read_models))
        await service_state.save(
            uow,
            SERVICE,
            CHECKPOINT_KEY,
            {"last_position": 0},
            0 if stored is None else stored.version,
        )
        if ledger is not None:
            await service_state.save(
                uow, SERVICE, PNL_KEY, json.loads(PnlLedger().to_document()), ledger.version
            )
    await catch_up(store)
    return await checkpoint(store)


async def checkpoint(store: SqlEventStore) -> int:
    stored = await store.load_state(SERVICE, CHECKPOINT_KEY)
    return 0 if stored is None else int(stored.document["last_position"])
