from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import asyncpg
import pytest
from sqlalchemy import event, text

from shared.events import OrderFilled
from shared.eventstore import (
    ConcurrencyError,
    DuplicateInboxError,
    EventStoreUnavailableError,
    SqlEventStore,
    service_state,
    timers,
    upgrade,
)
from shared.eventstore.records import InboxEntry
from shared.eventstore.store import UnitOfWork
from tests.integration.eventstore.contract import EventStoreContract
from tests.integration.eventstore.position_lock import holds_position_lock
from tests.unit.events.examples import order_filled

pytestmark = pytest.mark.integration

RACES = 200


async def arm_timer(uow: UnitOfWork, workflow_id: str) -> None:
    """A write of a service's own, as a consumer makes before its append."""
    await timers.schedule(
        uow,
        service="portfolio",
        workflow_id=workflow_id,
        chain="",
        kind="check",
        due_at=datetime.now(UTC),
    )


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url


@pytest.fixture
async def postgres_store(postgres_url: str) -> AsyncIterator[SqlEventStore]:
    await upgrade(postgres_url)
    store = SqlEventStore(postgres_url, pool_size=4)
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.parametrize("through", ["unit_of_work", "store.append"])
async def test_racing_appends_of_one_version_have_exactly_one_winner(
    postgres_store: SqlEventStore, through: str
):
    async def append(version: int, writer: int) -> OrderFilled | ConcurrencyError:
        event = order_filled(qty=Decimal(writer), price=Decimal(version + 1))
        try:
            if through == "store.append":
                await postgres_store.append("raced", version, [event])
            else:
                async with postgres_store.unit_of_work() as uow:
                    await uow.append("raced", version, [event])
        except ConcurrencyError as error:
            return error
        return event

    winners: list[OrderFilled] = []
    for version in range(RACES):
        outcomes = await asyncio.gather(append(version, 1), append(version, 2))
        won = [outcome for outcome in outcomes if isinstance(outcome, OrderFilled)]
        lost = [outcome for outcome in outcomes if isinstance(outcome, ConcurrencyError)]
        assert len(won) == 1, f"version {version}: {outcomes}"
        assert len(lost) == 1
        assert lost[0].expected_version == version
        assert lost[0].actual_version == version + 1
        winners.extend(won)

    stream = await postgres_store.read_stream("raced")
    assert len(stream) == RACES
    assert [record.event for record in stream] == winners
    assert [record.stream_version for record in stream] == list(range(1, RACES + 1))
    assert [record.position for record in stream] == list(range(1, RACES + 1))
    assert await postgres_store.outbox_lag() == RACES


@pytest.mark.parametrize("through", ["unit_of_work", "store.append"])
async def test_appends_to_the_end_of_one_stream_at_once_all_land_in_order(
    postgres_store: SqlEventStore, through: str
):
    """`store.append`'s statement reads the stream version on a snapshot taken before it waits
    for the position lock, so it can miss an append committed meanwhile: it must retry, not
    fail, when the caller asked for the end of the stream."""
    writers, appends_each = 4, 25

    async def write() -> None:
        for _ in range(appends_each):
            if through == "store.append":
                await postgres_store.append("contended", None, [order_filled()])
            else:
                async with postgres_store.unit_of_work() as uow:
                    await uow.append("contended", None, [order_filled()])

    await asyncio.gather(*(write() for _ in range(writers)))
    stream = await postgres_store.read_stream("contended")
    assert [record.stream_version for record in stream] == list(
        range(1, writers * appends_each + 1)
    )
    assert [record.position for record in stream] == list(range(1, writers * appends_each + 1))
    assert await postgres_store.outbox_lag() == writers * appends_each


async def test_a_reader_paging_during_concurrent_appends_skips_nothing(
    postgres_store: SqlEventStore,
):
    writers, appends_each = 4, 25
    done = asyncio.Event()

    async def write(stream: str) -> None:
        for _ in range(appends_each):
            async with postgres_store.unit_of_work() as uow:
                # A consumer's unit of work: its inbox row and its own writes before the append,
                # which takes the position lock only then.
                await uow.record_inbox("portfolio", uuid4())
                await arm_timer(uow, stream)
                await uow.append(stream, None, [order_filled(), order_filled()])

    async def read() -> list[int]:
        seen: list[int] = []
        while True:
            finished = done.is_set()
            page = await postgres_store.read_all(after_position=seen[-1] if seen else 0, limit=7)
            seen.extend(record.position for record in page)
            if finished and not page:
                return seen

    reader = asyncio.create_task(read())
    await asyncio.gather(*(write(f"w{index}") for index in range(writers)))
    done.set()
    positions = await reader
    assert positions == list(range(1, writers * appends_each * 2 + 1))


async def test_redelivered_event_handled_twice_at_once_commits_once_without_deadlock(
    postgres_store: SqlEventStore,
):
    """Two deliveries of one event in units of work as a consumer makes them (inbox row, a
    timer, then the append), beside a third appending to a stream of its own: the inbox row's
    unique key makes the second delivery wait and fail as a duplicate, with no global lock taken
    before the append and no deadlock between the inbox row and the position counter."""

    async def handle(event_id: UUID) -> str:
        if await postgres_store.seen_among("portfolio", [event_id]):
            return "skipped"
        try:
            async with postgres_store.unit_of_work() as uow:
                await uow.record_inbox("portfolio", event_id)
                await arm_timer(uow, f"wf-{event_id}")
                await uow.append(f"wf-{event_id}", None, [order_filled()])
        except DuplicateInboxError:
            return "duplicate"
        return "committed"

    async def append_elsewhere(index: int) -> None:
        async with postgres_store.unit_of_work() as uow:
            await uow.append(f"elsewhere-{index}", 0, [order_filled()])

    for index in range(20):
        event_id = uuid4()
        *outcomes, _ = await asyncio.gather(
            handle(event_id), handle(event_id), append_elsewhere(index)
        )
        assert sorted(outcomes) in (["committed", "duplicate"], ["committed", "skipped"])
        assert len(await postgres_store.read_stream(f"wf-{event_id}")) == 1
        assert len(await timers.pending(postgres_store, "portfolio", f"wf-{event_id}")) == 1
    positions = [record.position for record in await postgres_store.read_all()]
    assert positions == list(range(1, 41))


async def test_a_unit_of_work_that_has_not_appended_yet_holds_up_no_append(
    postgres_store: SqlEventStore,
):
    """A unit of work with its inbox row, a timer and a state document written but its append
    still to come holds no position lock: another unit of work appends and commits meanwhile
    (on the old order it waited for the first to commit and failed on its lock timeout), and
    the first's append, made afterwards, takes the next position."""
    async with postgres_store.unit_of_work() as first:
        await first.record_inbox("portfolio", uuid4())
        await arm_timer(first, "wf-first")
        await service_state.save(first, "portfolio", "wf-first", {"step": 1}, 0)
        assert not await holds_position_lock(first)

        async with postgres_store.unit_of_work() as second:
            await second.connection.execute(text("SET LOCAL lock_timeout = '10s'"))
            await second.record_inbox("portfolio", uuid4())
            [appended] = await second.append("wf-second", 0, [order_filled()])
        assert appended.position == 1

        [last] = await first.append("wf-first", 0, [order_filled()])
        assert await holds_position_lock(first)
    assert last.position == 2
    assert [record.position for record in await postgres_store.read_all()] == [1, 2]


async def test_a_connection_lost_under_a_statement_is_unavailable_and_replaced(
    postgres_store: SqlEventStore, postgres_url: str
):
    """The store's single statements run on asyncpg connections of their own; a backend that
    dies under a statement (a database restart) must surface as EventStoreUnavailableError,
    which consumers wait out, and the next statement must get a live connection."""
    event_id = uuid4()
    await postgres_store.append("s", 0, [], inbox=InboxEntry("portfolio", event_id))

    async def sleep_on_the_database() -> None:
        async with postgres_store.statements.connection() as connection:
            await connection.execute("SELECT pg_sleep(30)")

    sleeping = asyncio.create_task(sleep_on_the_database())
    admin = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        for _ in range(100):
            terminated = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query = 'SELECT pg_sleep(30)'"
            )
            if terminated:
                break
            await asyncio.sleep(0.02)
    finally:
        await admin.close()
    with pytest.raises(EventStoreUnavailableError, match="unreachable or dropped the connection"):
        await sleeping
    assert event_id in await postgres_store.seen_among("portfolio", [event_id])


async def test_a_unit_of_work_whose_connection_dies_before_its_append_is_unavailable(
    postgres_store: SqlEventStore, postgres_url: str
):
    """A consumer's unit of work records its inbox row and only then appends, on its
    connection's driver: a database restart in between must surface as
    EventStoreUnavailableError, which consumers wait out, not as a failed delivery attempt."""
    event_id = uuid4()
    admin = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        with pytest.raises(EventStoreUnavailableError, match="dropped the connection"):
            async with postgres_store.unit_of_work() as uow:
                await uow.record_inbox("portfolio", event_id)
                raw = await uow.connection.get_raw_connection()
                assert await admin.fetchval(
                    "SELECT pg_terminate_backend($1)", raw.driver_connection.get_server_pid()
                )
                await uow.append("s", None, [order_filled()])
    finally:
        await admin.close()
    async with postgres_store.unit_of_work() as uow:
        await uow.record_inbox("portfolio", event_id)
        await uow.append("s", None, [order_filled()])
    assert len(await postgres_store.read_stream("s")) == 1


async def test_an_unreachable_database_is_unavailable_to_the_store_s_statements() -> None:
    store = SqlEventStore("postgresql://postgres@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(EventStoreUnavailableError, match=r"127\.0\.0\.1:1/nowhere"):
            await store.seen_among("portfolio", [uuid4()])
        with pytest.raises(EventStoreUnavailableError):
            await store.append("s", None, [order_filled()])
    finally:
        await store.close()


async def test_a_multi_host_url_migrates_appends_and_reads_on_the_host_that_answers(
    postgres_url: str,
) -> None:
    """docs/operations.md's multi-host form, its first host down (nothing listens on port 1):
    the migrations, the store's own asyncpg statements and SQLAlchemy's units of work all
    connect to the second."""
    parts = urlsplit(postgres_url)
    user, _, server = parts.netloc.rpartition("@")
    url = f"postgresql://{user}@127.0.0.1:1,{server}{parts.path}?target_session_attrs=read-write"
    await upgrade(url)
    store = SqlEventStore(url)
    try:
        await store.append("multi-host", 0, [order_filled()])
        async with store.unit_of_work() as uow:
            await uow.append("multi-host", 1, [order_filled()])
        assert [record.stream_version for record in await store.read_stream("multi-host")] == [1, 2]
    finally:
        await store.close()


async def test_state_and_outbox_statements_are_single_statements_outside_a_transaction(
    postgres_store: SqlEventStore,
):
    """Every service reads its state document per step and its outbox per commit, and marks the
    rows it published: on the statement connections each is one round trip, where a SQLAlchemy
    connection wrapped it in BEGIN and ROLLBACK or COMMIT
    (docs/performance.md, Statements per workflow)."""
    document = {"phase": "submitting", "cash": "1234.56", "lines": [{"symbol": "SPY"}]}
    appended = order_filled()
    async with postgres_store.unit_of_work() as uow:
        await service_state.save(uow, "execution", "wf", document, 0)
        await uow.append("s", 0, [appended])
    began: list[object] = []
    event.listen(postgres_store.engine.sync_engine, "begin", began.append)

    assert await postgres_store.load_state("execution", "wf") == service_state.StoredState(
        1, document
    )
    assert await postgres_store.load_state("execution", "other") is None
    [pending] = await postgres_store.pending_outbox()
    assert (pending.event_id, pending.routing_key) == (appended.event_id, "OrderFilled")
    assert isinstance(pending.event_id, UUID) and isinstance(pending.body, bytes)
    assert await postgres_store.outbox_lag() == 1
    await postgres_store.mark_sent([pending.id])
    assert await postgres_store.pending_outbox() == []
    assert await postgres_store.outbox_lag() == 0
    assert began == []


async def test_a_unit_of_work_takes_the_position_lock_in_its_append_statement(
    postgres_store: SqlEventStore,
):
    """After the unit of work's own writes the append statement takes the counter itself: no
    statement of its own first, which was one more round trip holding the lock
    (docs/decisions.md, "A unit of work takes the position counter in its append")."""
    sent: list[str] = []
    event.listen(
        postgres_store.engine.sync_engine,
        "before_cursor_execute",
        lambda *arguments: sent.append(arguments[2]),
    )
    async with postgres_store.unit_of_work() as uow:
        await arm_timer(uow, "wf")
        assert not await holds_position_lock(uow)
        sent.clear()
        await uow.append("wf", 0, [order_filled()])
        assert await holds_position_lock(uow)
    assert not any("event_positions" in statement for statement in sent[:-1])
    assert [record.position for record in await postgres_store.read_all()] == [1]


async def test_an_append_on_a_stale_snapshot_fails_the_unit_of_work_and_records_nothing(
    postgres_store: SqlEventStore,
):
    """The append's snapshot is taken before it waits for the counter: a second writer of the
    same stream that commits meanwhile makes the first's version stale, which the stream's
    unique version refuses — a ConcurrencyError its caller answers by running the work again."""
    async with postgres_store.unit_of_work() as uow:
        await uow.append("wf", 0, [order_filled()])

    async with postgres_store.unit_of_work() as holder:
        await holder.append("wf", 1, [order_filled()])  # holds the counter until it commits

        async def stale_writer() -> None:
            async with postgres_store.unit_of_work() as uow:
                await arm_timer(uow, "wf-stale")
                await uow.append("wf", None, [order_filled()])

        waiting = asyncio.create_task(stale_writer())
        await asyncio.sleep(0.5)  # its append has taken its snapshot and waits for the counter
        assert not waiting.done()
    with pytest.raises(ConcurrencyError):
        await waiting

    assert [record.stream_version for record in await postgres_store.read_stream("wf")] == [1, 2]
    assert await timers.pending(postgres_store, "portfolio", "wf-stale") == []
    assert [record.position for record in await postgres_store.read_all()] == [1, 2]
