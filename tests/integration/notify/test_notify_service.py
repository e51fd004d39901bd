"""The notify service as deployed: its runtime on the real RabbitMQ and PostgreSQL, mailing a
real SMTP server. A workflow's end is relayed from the store's outbox; the email arrives once,
however often the ending is delivered."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.notify.service import definition
from shared import sent_reports
from shared.bus.rabbitmq import RabbitMqBus
from shared.events import NotificationSent, encode
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.service.runtime import ServiceRuntime
from shared.settings import Settings
from tests.eventually import eventually
from tests.integration.notify.sinks import smtp_server
from tests.servers import delete_bus_namespace, unique_bus_namespace
from tests.unit.notify import workflows

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[SqlEventStore]:
    await upgrade(postgres_url)
    store = SqlEventStore(postgres_url)
    yield store
    await store.close()


async def test_a_completed_workflow_is_mailed_once_over_the_real_bus(
    store: SqlEventStore, postgres_url: str, rabbitmq_url: str
) -> None:
    namespace = unique_bus_namespace()
    workflow = workflows.success()
    events = list(workflow.events)
    completion = events[-1]
    late = workflow.failed("trade_execution", "a late failure").events[-1]
    try:
        async with smtp_server() as (port, mailbox):
            settings = Settings(
                rabbitmq_url=rabbitmq_url,
                bus_namespace=namespace,
                smtp_host="127.0.0.1",
                smtp_port=port,
                smtp_starttls=False,
            )
            # The run so far was delivered to the services that answer it, which are not
            # running here; only its ending is left for notify's relay.
            async with store.unit_of_work() as uow:
                await uow.append(f"{workflow.id}/test", None, events[:-1])
            await store.mark_sent([row.id for row in await store.pending_outbox()])
            bus = RabbitMqBus(rabbitmq_url, exchange=settings.bus_exchange)
            runtime = ServiceRuntime(
                definition(settings), settings, SqlEventStore(postgres_url), bus
            )
            await runtime.start()
            try:

                async def ready() -> bool:
                    return (await runtime.readiness()).ready

                await eventually(ready, message="the notify consumer attached")
                async with store.unit_of_work() as uow:
                    await uow.append(f"{workflow.id}/test", None, [completion])
                runtime.relay.wake()
                await eventually(lambda: len(mailbox.messages) == 1, message="one email")
                await bus.publish(
                    completion.event_type, encode(completion), message_id=str(completion.event_id)
                )
                await bus.publish(late.event_type, encode(late), message_id=str(late.event_id))

                async def both_endings_seen() -> bool:
                    return late.event_id in await store.seen_among("notify", [late.event_id])

                await eventually(both_endings_seen, message="the late failure was consumed")
            finally:
                await runtime.stop()
    finally:
        await delete_bus_namespace(namespace)

    assert len(mailbox.messages) == 1
    recorded = [r.event for r in await store.read_correlation(workflow.id)]
    sent = [e for e in recorded if isinstance(e, NotificationSent)]
    assert [(e.channel, e.status, e.attempts) for e in sent] == [("email", "sent", 1)]
    # the report as sent, kept with its delivery for the dashboard
    kept = await sent_reports.load(store, workflow.id)
    assert kept is not None and not kept["fallback"]
    message = mailbox.messages[0]
    assert kept["subject"] == message["Subject"]
    html = message.get_body(("html",))
    assert html is not None
    assert kept["html"].strip() == html.get_content().replace("\r\n", "\n").strip()
