"""ALCHEMISER_NOTIFY_URLS end to end: the setting, the apprise channel and the notify step, with
apprise's `json://` and `form://` plugins posting to local catchers (its Slack and Telegram
plugins post to fixed public hosts, which a test cannot stand in for) and the workflow's events
in the real PostgreSQL store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import pytest

from services.notify.channels.apprise_url import AppriseNotifier
from services.notify.notify_step import NotifyStep
from services.notify.service import configured_notifiers
from shared.events import NotificationSent
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import HandlerContext
from shared.settings import Settings
from tests.integration.notify.sinks import http_server, unused_port
from tests.integration.notify.test_channels import record
from tests.unit.notify import workflows
from tests.unit.notify.fakes import RecordingSleep

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[SqlEventStore]:
    await upgrade(postgres_url)
    store = SqlEventStore(postgres_url)
    yield store
    await store.close()


async def notify_all(
    store: SqlEventStore, workflow: workflows.Workflow, settings: Settings
) -> list[NotificationSent]:
    await record(store, workflow.events)
    step = NotifyStep(settings, configured_notifiers(settings), sleep=RecordingSleep())
    outcome = await step.handle(workflow.events[-1], HandlerContext(service="notify", store=store))
    emitted = outcome.events
    return [event for event in emitted if isinstance(event, NotificationSent)]


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """Accepts a connection and never answers: a chat service that hangs."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_json_and_form_urls_each_get_the_message_and_one_notification_sent(
    store: SqlEventStore,
) -> None:
    async with http_server() as (first, json_sink), http_server() as (second, form_sink):
        json_url = f"json://127.0.0.1:{port_of(first)}/alerts"
        form_url = f"form://127.0.0.1:{port_of(second)}/alerts"
        settings = Settings(notify_urls=f"{json_url}\n  {form_url}")
        sent = await notify_all(store, workflows.partial_failure(), settings)

    assert sorted((e.channel, e.target, e.status, e.attempts) for e in sent) == [
        ("apprise", form_url, "sent", 1),
        ("apprise", json_url, "sent", 1),
    ]
    subject = "[FAILURE][TRD_BUYING_POWER] Alchemiser - PAPER Trading Report"
    for sink in (json_sink, form_sink):
        assert sink.paths == ["/alerts"]
        (body,) = sink.bodies
        assert body["title"] == subject
        assert "SELL TLT $20,010.00 (Filled)" in body["message"]
        assert "BUY TQQQ — (Rejected)" in body["message"]


async def test_a_failing_url_is_recorded_without_its_secret_and_blocks_no_other(
    store: SqlEventStore,
) -> None:
    dead = f"json://alc:hunter2@127.0.0.1:{unused_port()}/hook"
    async with http_server() as (url, sink):
        alive = f"form://127.0.0.1:{port_of(url)}/ok"
        sent = await notify_all(store, workflows.success(), Settings(notify_urls=f"{dead} {alive}"))

    outcomes = {e.target: (e.status, e.attempts, e.error) for e in sent}
    dead_name = dead.replace("hunter2", "****")
    status, attempts, error = outcomes[dead_name]
    assert (status, attempts) == ("failed", 3)
    assert error is not None and dead_name in error and "hunter2" not in error
    assert outcomes[alive][:2] == ("sent", 1)
    assert len(sink.bodies) == 1


async def test_a_send_that_outlives_its_timeout_fails_and_leaves_the_loop_free(
    store: SqlEventStore,
) -> None:
    workflow = workflows.success()
    await record(store, workflow.events)
    async with silent_server() as port:
        url = f"json://127.0.0.1:{port}/hook"
        step = NotifyStep(
            Settings(),
            [AppriseNotifier(url, url, timeout_s=0.5)],
            sleep=RecordingSleep(),
            attempts=1,
        )
        # Were apprise called on this loop, `wait_for` could not interrupt it: the send would end
        # after apprise's own 4 s read timeout as "could not deliver", not as this timeout.
        outcome = await step.handle(
            workflow.events[-1], HandlerContext(service="notify", store=store)
        )
    (sent,) = outcome.events

    assert isinstance(sent, NotificationSent)
    assert (sent.status, sent.error) == ("failed", f"{url}: no answer within 0.5 s")
