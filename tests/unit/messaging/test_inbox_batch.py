"""The inbox group commit: concurrent asks share statements, each gets its own answer."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import pytest

from shared.eventstore.errors import EventStoreUnavailableError
from shared.messaging.inbox_batch import Coalescer


class Recorder:
    """A statement over an in-memory inbox that records the batches it was given."""

    def __init__(self, processed: set[UUID] | None = None) -> None:
        self.processed = set(processed or ())
        self.batches: list[list[UUID]] = []
        self.fail_with: Exception | None = None

    async def insert(self, event_ids: list[UUID]) -> set[UUID]:
        self.batches.append(event_ids)
        await asyncio.sleep(0.01)  # the statement's round trip
        if self.fail_with is not None:
            raise self.fail_with
        new = set(event_ids) - self.processed
        self.processed |= new
        return new


async def test_a_lone_ask_runs_at_once_in_a_batch_of_its_own() -> None:
    recorder = Recorder()
    event_id = uuid4()
    assert await Coalescer(recorder.insert, first_only=True).ask(event_id)
    assert recorder.batches == [[event_id]]


async def test_asks_made_while_a_statement_is_in_flight_share_the_next_one() -> None:
    recorder = Recorder()
    batcher = Coalescer(recorder.insert, first_only=True)
    first = asyncio.create_task(batcher.ask(uuid4()))
    await asyncio.sleep(0)  # the first statement is now in flight
    rest = [uuid4() for _ in range(7)]
    answers = await asyncio.gather(first, *(batcher.ask(event_id) for event_id in rest))
    assert answers == [True] * 8
    assert [len(batch) for batch in recorder.batches] == [1, 7]


async def test_each_ask_gets_its_own_answer_and_a_duplicate_counts_once() -> None:
    done, again = uuid4(), uuid4()
    recorder = Recorder(processed={done})
    batcher = Coalescer(recorder.insert, first_only=True)
    answers = await asyncio.gather(batcher.ask(done), batcher.ask(again), batcher.ask(again))
    assert answers == [False, True, False]
    assert recorder.batches == [[done, again]]


async def test_a_read_answers_every_ask_for_the_same_id_alike() -> None:
    seen = uuid4()
    recorder = Recorder(processed={seen})

    async def read(event_ids: list[UUID]) -> set[UUID]:
        return set(event_ids) & recorder.processed

    batcher = Coalescer(read, first_only=False)
    assert await asyncio.gather(batcher.ask(seen), batcher.ask(seen), batcher.ask(uuid4())) == [
        True,
        True,
        False,
    ]


async def test_a_failed_statement_fails_every_ask_it_carried_and_the_next_batch_runs() -> None:
    recorder = Recorder()
    recorder.fail_with = EventStoreUnavailableError("event store down")
    batcher = Coalescer(recorder.insert, first_only=True)
    failed = await asyncio.gather(
        batcher.ask(uuid4()), batcher.ask(uuid4()), return_exceptions=True
    )
    assert all(isinstance(outcome, EventStoreUnavailableError) for outcome in failed)
    recorder.fail_with = None
    assert await batcher.ask(uuid4())


async def test_a_cancelled_ask_does_not_stop_the_others() -> None:
    recorder = Recorder()
    batcher = Coalescer(recorder.insert, first_only=True)
    leaving = asyncio.create_task(batcher.ask(uuid4()))
    staying = asyncio.create_task(batcher.ask(uuid4()))
    await asyncio.sleep(0)
    leaving.cancel()
    assert await staying
    with pytest.raises(asyncio.CancelledError):
        await leaving
