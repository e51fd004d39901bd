"""The event store contract, subclassed once per backend (the `eventsourcing` library's recorder
tests are the model). A subclass provides `database_url`: a fresh, never-migrated database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest
from sqlalchemy import insert

from shared.events import Event, OrderFilled, WorkflowFailed
from shared.eventstore import (
    ConcurrencyError,
    DatabaseNotMigratedError,
    DuplicateEventError,
    DuplicateInboxError,
    SqlEventStore,
    ensure_migrated,
    upgrade,
)
from shared.eventstore.records import InboxEntry
from shared.eventstore.schema import events as events_table
from tests.unit.events.examples import every_event, order_filled, workflow_failed


class Boom(Exception):
    pass


class EventStoreContract:
    @pytest.fixture
    async def store(self, database_url: str) -> AsyncIterator[SqlEventStore]:
        await upgrade(database_url)
        store = SqlEventStore(database_url)
        try:
            yield store
        finally:
            await store.close()

    async def test_new_stream_is_at_version_zero(self, store: SqlEventStore):
        async with store.unit_of_work() as uow:
            assert await uow.stream_version("workflow-1") == 0
        assert await store.read_stream("workflow-1") == []

    async def test_append_then_read_stream_returns_the_same_events(self, store: SqlEventStore):
        originals = every_event()
        async with store.unit_of_work() as uow:
            recorded = await uow.append("workflow-1", 0, originals)
            assert await uow.stream_version("workflow-1") == len(originals)
        read = await store.read_stream("workflow-1")
        assert [record.event for record in read] == originals
        assert [record.stream_version for record in read] == list(range(1, len(originals) + 1))
        assert [record.position for record in read] == [record.position for record in recorded]
        assert all(record.recorded_at.tzinfo is not None for record in read)

    async def test_expected_version_conflict_raises_and_overwrites_nothing(
        self, store: SqlEventStore
    ):
        first = order_filled(Decimal("1"))
        async with store.unit_of_work() as uow:
            await uow.append("s", 0, [first])
        with pytest.raises(ConcurrencyError) as error:
            async with store.unit_of_work() as uow:
                await uow.append("s", 0, [order_filled(Decimal("2"))])
        assert (error.value.stream_id, error.value.expected_version) == ("s", 0)
        assert error.value.actual_version == 1
        assert "'s'" in str(error.value) and "version 0" in str(error.value)
        assert [record.event for record in await store.read_stream("s")] == [first]

    async def test_append_with_no_expected_version_goes_to_the_end(self, store: SqlEventStore):
        async with store.unit_of_work() as uow:
            await uow.append("s", None, [order_filled()])
            recorded = await uow.append("s", None, [order_filled(), order_filled()])
        assert [record.stream_version for record in recorded] == [2, 3]

    async def test_a_caught_conflict_leaves_positions_gap_free(self, store: SqlEventStore):
        async with store.unit_of_work() as uow:
            await uow.append("a", 0, [order_filled()])
        async with store.unit_of_work() as uow:
            with pytest.raises(ConcurrencyError):
                await uow.append("a", 5, [order_filled(), order_filled()])
            await uow.append("b", 0, [order_filled()])
        assert [record.position for record in await store.read_all()] == [1, 2]

    async def test_read_all_pages_from_a_position(self, store: SqlEventStore):
        for stream in ("a", "b", "c"):
            async with store.unit_of_work() as uow:
                await uow.append(stream, 0, [order_filled() for _ in range(4)])
        first_page = await store.read_all(after_position=0, limit=5)
        second_page = await store.read_all(after_position=first_page[-1].position, limit=5)
        rest = await store.read_all(after_position=second_page[-1].position, limit=5)
        positions = [record.position for record in first_page + second_page + rest]
        assert positions == list(range(1, 13))
        assert [len(first_page), len(second_page), len(rest)] == [5, 5, 2]
        assert await store.read_all(after_position=12) == []

    async def test_replay_pages_every_event_in_position_order(self, store: SqlEventStore):
        for stream in ("a", "b", "c"):
            await store.append(stream, 0, [order_filled() for _ in range(4)])
        pages = [page async for page in store.replay(after_position=1, page_size=5)]
        assert [len(page) for page in pages] == [5, 5, 1]
        positions = [record.position for page in pages for record in page]
        assert positions == list(range(2, 13))

    async def test_a_replay_stopped_early_leaves_the_store_usable(self, store: SqlEventStore):
        await store.append("a", 0, [order_filled() for _ in range(6)])
        async for page in store.replay(page_size=2):
            assert [record.position for record in page] == [1, 2]
            break
        assert len(await store.read_all()) == 6
        assert [len(page) async for page in store.replay(page_size=4)] == [4, 2]

    async def test_read_correlation_returns_one_workflow_in_position_order(
        self, store: SqlEventStore
    ):
        mine = [order_filled(correlation_id="wf-mine") for _ in range(3)]
        async with store.unit_of_work() as uow:
            await uow.append("x", 0, [mine[0], order_filled(correlation_id="wf-other")])
        async with store.unit_of_work() as uow:
            await uow.append("y", 0, [mine[1]])
            await uow.append("x", 2, [mine[2]])
        read = await store.read_correlation("wf-mine")
        assert [record.event for record in read] == mine
        assert [record.position for record in read] == sorted(record.position for record in read)

    async def test_read_correlation_of_some_types_leaves_the_others_out(self, store: SqlEventStore):
        failed, filled = workflow_failed(), [order_filled(), order_filled()]
        workflow = failed.correlation_id
        async with store.unit_of_work() as uow:
            await uow.append("a", 0, [filled[0], failed, filled[1]])
            await uow.append("b", 0, [order_filled(correlation_id="other")])

        async def read(*types: str) -> list[Event]:
            return [r.event for r in await store.read_correlation(workflow, types)]

        assert await read("OrderFilled") == filled
        assert await read("WorkflowFailed") == [failed]
        assert await read("WorkflowStarted") == []
        assert await read("OrderFilled", "WorkflowFailed") == [filled[0], failed, filled[1]]

    async def test_outbox_rows_are_written_with_the_append_and_marked_sent(
        self, store: SqlEventStore
    ):
        appended = [order_filled(), workflow_failed()]
        async with store.unit_of_work() as uow:
            await uow.append("s", 0, appended)
        pending = await store.pending_outbox()
        assert [message.event_id for message in pending] == [e.event_id for e in appended]
        assert [message.routing_key for message in pending] == ["OrderFilled", "WorkflowFailed"]
        assert json.loads(pending[0].body)["event_id"] == str(appended[0].event_id)
        assert await store.outbox_lag() == 2
        await store.mark_sent([pending[0].id])
        assert [message.id for message in await store.pending_outbox()] == [pending[1].id]
        assert await store.outbox_lag() == 1
        await store.mark_sent([pending[1].id])
        assert await store.pending_outbox() == []
        assert await store.outbox_lag() == 0

    async def test_pending_outbox_is_oldest_first_and_limited(self, store: SqlEventStore):
        for version in range(5):
            async with store.unit_of_work() as uow:
                await uow.append("s", version, [order_filled()])
        pending = await store.pending_outbox(limit=3)
        assert len(pending) == 3
        assert [message.id for message in pending] == sorted(message.id for message in pending)

    async def test_inbox_records_what_a_service_processed(self, store: SqlEventStore):
        event_id = uuid4()
        assert await store.seen_among("portfolio", [event_id]) == set()
        async with store.unit_of_work() as uow:
            await uow.record_inbox("portfolio", event_id)
        assert await store.seen_among("portfolio", [event_id]) == {event_id}
        assert await store.seen_among("execution", [event_id]) == set()

    async def test_recording_the_same_inbox_entry_twice_is_our_error(self, store: SqlEventStore):
        event_id = uuid4()
        async with store.unit_of_work() as uow:
            await uow.record_inbox("portfolio", event_id)
        with pytest.raises(DuplicateInboxError, match="portfolio"):
            async with store.unit_of_work() as uow:
                await uow.record_inbox("portfolio", event_id)

    async def test_inbox_and_append_commit_together(self, store: SqlEventStore):
        event_id = uuid4()
        async with store.unit_of_work() as uow:
            await uow.record_inbox("portfolio", event_id)
            await uow.append("s", 0, [order_filled()])
        assert await store.seen_among("portfolio", [event_id]) == {event_id}
        assert len(await store.read_stream("s")) == 1

    async def test_an_inbox_row_after_an_append_is_refused_and_nothing_commits(
        self, store: SqlEventStore
    ):
        """The appends come last in a unit of work (their position lock must be its last
        lock), so an inbox row recorded after one is a programming error, not a commit."""
        event_id = uuid4()
        with pytest.raises(RuntimeError, match="record the inbox row before appending"):
            async with store.unit_of_work() as uow:
                await uow.append("s", 0, [order_filled()])
                await uow.record_inbox("portfolio", event_id)
        assert await store.read_all() == []
        assert await store.seen_among("portfolio", [event_id]) == set()

    async def test_a_claim_of_a_stream_already_holding_the_same_event_is_a_conflict(
        self, store: SqlEventStore
    ):
        """What a consumer's lost `StreamClaim` relies on: appending at version 0 to a stream
        the winner wrote, even with the winner's very event, is a ConcurrencyError naming the
        stream (the version is checked before anything is inserted), not a DuplicateEventError."""
        event = order_filled()
        await store.append("claimed", 0, [event])
        with pytest.raises(ConcurrencyError) as conflict:
            async with store.unit_of_work() as uow:
                await uow.append("claimed", 0, [event])
        assert (conflict.value.stream_id, conflict.value.actual_version) == ("claimed", 1)

    async def test_an_error_rolls_back_events_outbox_and_inbox(self, store: SqlEventStore):
        with pytest.raises(Boom):
            async with store.unit_of_work() as uow:
                await uow.record_inbox("portfolio", uuid4())
                await uow.append("s", 0, [order_filled(), order_filled()])
                raise Boom
        assert await store.read_all() == []
        assert await store.pending_outbox() == []
        async with store.unit_of_work() as uow:
            assert await uow.stream_version("s") == 0
            recorded = await uow.append("s", 0, [order_filled()])
        assert recorded[0].position == 1

    async def test_appending_an_event_twice_is_a_duplicate_event_error(self, store: SqlEventStore):
        event = order_filled()
        async with store.unit_of_work() as uow:
            await uow.append("a", 0, [event])
        with pytest.raises(DuplicateEventError, match=str(event.event_id)):
            async with store.unit_of_work() as uow:
                await uow.append("b", 0, [event])
        assert await store.read_stream("b") == []

    async def test_amounts_come_back_exactly(self, store: SqlEventStore):
        amounts = [Decimal("0.000000001"), Decimal("123456789012.123456789"), Decimal("1E+3")]
        async with store.unit_of_work() as uow:
            await uow.append("s", 0, [order_filled(amount, amount) for amount in amounts])
        read = await store.read_stream("s")
        filled = [record.event for record in read]
        assert all(isinstance(event, OrderFilled) for event in filled)
        assert [str(event.filled_qty) for event in filled] == [str(a) for a in amounts]  # type: ignore[attr-defined]

    async def test_store_append_commits_the_events_outbox_and_inbox_row_together(
        self, store: SqlEventStore
    ):
        cause = uuid4()
        appended = [order_filled(), order_filled()]
        recorded = await store.append("s", 0, appended, inbox=InboxEntry("portfolio", cause))
        assert [(r.position, r.stream_version) for r in recorded] == [(1, 1), (2, 2)]
        assert [r.event for r in await store.read_stream("s")] == appended
        assert [m.event_id for m in await store.pending_outbox()] == [e.event_id for e in appended]
        assert cause in await store.seen_among("portfolio", [cause])
        assert cause not in await store.seen_among("execution", [cause])

    async def test_store_append_of_a_handled_delivery_writes_nothing(self, store: SqlEventStore):
        cause = uuid4()
        await store.append("s", 0, [order_filled()], inbox=InboxEntry("portfolio", cause))
        with pytest.raises(DuplicateInboxError, match="portfolio"):
            await store.append("s", None, [order_filled()], inbox=InboxEntry("portfolio", cause))
        assert len(await store.read_stream("s")) == 1
        assert len(await store.pending_outbox()) == 1
        later = await store.append("t", 0, [order_filled()])
        assert later[0].position == 2, "the refused append gave its position back"

    async def test_store_append_conflict_records_no_inbox_row(self, store: SqlEventStore):
        cause = uuid4()
        await store.append("s", 0, [order_filled()])
        with pytest.raises(ConcurrencyError) as error:
            await store.append("s", 0, [order_filled()], inbox=InboxEntry("portfolio", cause))
        assert error.value.actual_version == 1
        assert cause not in await store.seen_among("portfolio", [cause])
        assert [r.position for r in await store.read_all()] == [1]

    async def test_store_append_of_a_stored_event_is_a_duplicate_event_error(
        self, store: SqlEventStore
    ):
        event = order_filled()
        await store.append("a", 0, [event])
        with pytest.raises(DuplicateEventError, match=str(event.event_id)):
            await store.append("b", 0, [event], inbox=InboxEntry("portfolio", uuid4()))
        assert await store.read_stream("b") == []

    async def test_store_append_without_events_records_only_the_inbox_row(
        self, store: SqlEventStore
    ):
        cause = uuid4()
        assert await store.append("s", None, [], inbox=InboxEntry("notify", cause)) == []
        assert cause in await store.seen_among("notify", [cause])
        assert await store.read_all() == []
        with pytest.raises(DuplicateInboxError, match="notify"):
            await store.append("s", None, [], inbox=InboxEntry("notify", cause))

    async def test_record_handled_records_each_new_delivery_once(self, store: SqlEventStore):
        before, first, second = uuid4(), uuid4(), uuid4()
        assert await store.record_handled("notify", [before]) == {before}
        recorded = await store.record_handled("notify", [before, first, second])
        assert recorded == {first, second}
        assert await store.record_handled("notify", [first]) == set()
        assert await store.seen_among("notify", [before, first, second, uuid4()]) == {
            before,
            first,
            second,
        }
        assert await store.seen_among("portfolio", [before]) == set()

    async def test_an_old_schema_version_is_upcast_when_read(self, store: SqlEventStore):
        v1 = workflow_failed().model_dump(mode="json")
        payload = {k: v1[k] for k in ("workflow_type", "failure_reason", "failure_step")}
        payload["error_details"] = v1["error_details"]
        async with store.engine.begin() as connection:
            await connection.execute(
                insert(events_table).values(
                    position=1,
                    stream_id="legacy",
                    stream_version=1,
                    event_id=uuid4(),
                    event_type="WorkflowFailed",
                    schema_version=1,
                    correlation_id="wf-legacy",
                    causation_id=None,
                    account_id="default",
                    occurred_at=datetime(2025, 1, 2, tzinfo=UTC),
                    source="portfolio",
                    payload=payload,
                    recorded_at=datetime(2025, 1, 2, tzinfo=UTC),
                )
            )
        [record] = await store.read_stream("legacy")
        assert isinstance(record.event, WorkflowFailed)
        assert record.event.schema_version == 2
        assert record.event.deadline_exceeded is False
        assert record.event.stalled_step is None

    async def test_ping_answers_when_the_database_is_up(self, store: SqlEventStore):
        await store.ping()

    async def test_an_unmigrated_database_is_detected(self, database_url: str):
        with pytest.raises(DatabaseNotMigratedError, match="alchemiser db upgrade"):
            await ensure_migrated(database_url)
        await upgrade(database_url)
        await ensure_migrated(database_url)

    async def test_upgrade_twice_is_harmless(self, database_url: str):
        await upgrade(database_url)
        await upgrade(database_url)
        await ensure_migrated(database_url)
