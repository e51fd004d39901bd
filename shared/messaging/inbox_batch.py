"""Group commit for a consumer's inbox: the deliveries one service handles side by side share
one read for "processed before?" and one insert for "processed, nothing emitted", instead of a
statement and a commit each. Each request still gets its own answer, and a delivery is
acknowledged only after the statement carrying it has committed.

A request made while a statement is in flight rides on the next one, so a lone delivery waits
for no timer and a busy queue pays one round trip per batch (benchmarks/bus.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from uuid import UUID

from shared.eventstore.store import SqlEventStore

MAX_BATCH = 256

Statement = Callable[[list[UUID]], Awaitable[set[UUID]]]
"""Runs one statement for distinct event ids; returns the ids it matched (seen or inserted)."""


class InboxBatch:
    def __init__(self, store: SqlEventStore, service: str) -> None:
        self._seen = Coalescer(lambda ids: store.seen_among(service, ids), first_only=False)
        self._record = Coalescer(lambda ids: store.record_handled(service, ids), first_only=True)

    async def seen(self, event_id: UUID) -> bool:
        """Whether the service already processed `event_id`."""
        return await self._seen.ask(event_id)

    async def record(self, event_id: UUID) -> bool:
        """Record `event_id` as processed with nothing emitted; False when it already was (or
        another delivery of it in the same batch got there first)."""
        return await self._record.ask(event_id)


class Coalescer:
    """One statement in flight at a time; the asks that arrive meanwhile form the next batch."""

    def __init__(self, statement: Statement, *, first_only: bool) -> None:
        self._statement = statement
        self._first_only = first_only
        """Only the first request for an id gets True (an insert counts once)."""
        self._waiting: list[tuple[UUID, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def ask(self, event_id: UUID) -> bool:
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((event_id, answer))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await answer

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                matched = await self._statement(list(dict.fromkeys(key for key, _ in batch)))
            except Exception as error:  # each asker decides (a database outage is waited out)
                for _, answer in batch:
                    if not answer.done():
                        answer.set_exception(error)
                continue
            except BaseException:
                for _, answer in batch + self._waiting:
                    answer.cancel()
                raise
            for event_id, answer in batch:
                hit = event_id in matched
                if hit and self._first_only:
                    matched.discard(event_id)
                if not answer.done():
                    answer.set_result(hit)
