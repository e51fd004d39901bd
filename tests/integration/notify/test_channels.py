"""The notify service's channels against real servers on loopback: an aiosmtpd SMTP server and a
local HTTP server, with the workflow's events in the real PostgreSQL store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from services.notify.channels.port import Notifier
from services.notify.channels.smtp import SmtpNotifier
from services.notify.channels.webhook import WebhookNotifier
from services.notify.notify_step import NotifyStep
from shared.bus.memory import InMemoryBus
from shared.bus.port import Message
from shared.events import Event, NotificationSent, encode
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import Consumer, HandlerContext
from shared.settings import Settings
from shared.workflow import NOTIFICATION
from tests.integration.notify.sinks import http_server, smtp_server, unused_port
from tests.unit.notify import workflows
from tests.unit.notify.fakes import RecordingSleep

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[SqlEventStore]:
    await upgrade(postgres_url)
    store = SqlEventStore(postgres_url)
    yield store
    await store.close()


def smtp_settings(port: int, **overrides: Any) -> Settings:
    return Settings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        email_from="alchemiser@example.com",
        email_to="owner@example.com, partner@example.com",
        **overrides,
    )


async def record(store: SqlEventStore, events: Sequence[Event]) -> None:
    async with store.unit_of_work() as uow:
        await uow.append(f"{events[0].correlation_id}/test", None, list(events))


async def notify(
    store: SqlEventStore, workflow: workflows.Workflow, settings: Settings, notifier: Notifier
) -> tuple[list[NotificationSent], RecordingSleep]:
    await record(store, workflow.events)
    sleep = RecordingSleep()
    step = NotifyStep(settings, [notifier], sleep=sleep)
    context = HandlerContext(service="notify", store=store)
    emitted = (await step.handle(workflow.events[-1], context)).events
    return [e for e in emitted if isinstance(e, NotificationSent)], sleep


async def test_one_multipart_alternative_email_with_text_then_html(store: SqlEventStore) -> None:
    async with smtp_server() as (port, mailbox):
        settings = smtp_settings(port)
        sent, _ = await notify(store, workflows.success(), settings, SmtpNotifier(settings))

    assert [(e.channel, e.status, e.attempts) for e in sent] == [("email", "sent", 1)]
    assert len(mailbox.messages) == 1
    message = mailbox.messages[0]
    assert message["Subject"] == "[SUCCESS] Alchemiser - PAPER Trading Report"
    assert message["From"] == "alchemiser@example.com"
    assert message["To"] == "owner@example.com, partner@example.com"
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content().startswith("Trading execution completed. Success: True")
    assert "PAPER Multi-Strategy Execution Report" in parts[1].get_content()


async def test_login_is_used_when_a_username_is_set(store: SqlEventStore) -> None:
    async with smtp_server() as (port, mailbox):
        settings = smtp_settings(port, smtp_username="alc", smtp_password="s3cret")
        sent, _ = await notify(store, workflows.no_trade(), settings, SmtpNotifier(settings))

    assert sent[0].status == "sent"
    assert mailbox.logins == ["alc"]
    assert len(mailbox.messages) == 1


async def test_smtp_down_is_tried_three_times_then_reported_failed(store: SqlEventStore) -> None:
    port = unused_port()
    settings = smtp_settings(port)

    sent, sleep = await notify(store, workflows.success(), settings, SmtpNotifier(settings))

    assert [(e.channel, e.status, e.attempts) for e in sent] == [("email", "failed", 3)]
    assert sent[0].error is not None and f"127.0.0.1:{port}" in sent[0].error
    assert sleep.waits == [1.0, 2.0]


async def test_webhook_receives_slack_compatible_json(store: SqlEventStore) -> None:
    async with http_server() as (url, sink):
        sent, _ = await notify(
            store, workflows.partial_failure(), Settings(webhook_url=url), WebhookNotifier(url)
        )

    assert [(e.channel, e.status, e.attempts) for e in sent] == [("webhook", "sent", 1)]
    assert sink.paths == ["/services/T000/B000/secret-token"]
    body = sink.bodies[0]
    subject = "[FAILURE][TRD_BUYING_POWER] Alchemiser - PAPER Trading Report"
    assert body["text"].startswith(subject)
    assert "1 of 2 order(s) succeeded" in body["text"]
    assert body["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": subject}}
    assert body["blocks"][1]["type"] == "section"
    assert body["blocks"][1]["text"]["type"] == "mrkdwn"


async def test_webhook_error_is_reported_without_its_url(store: SqlEventStore) -> None:
    async with http_server(status=500) as (url, sink):
        sent, _ = await notify(
            store, workflows.success(), Settings(webhook_url=url), WebhookNotifier(url)
        )

    assert [(e.status, e.attempts) for e in sent] == [("failed", 3)]
    assert len(sink.bodies) == 3
    assert sent[0].error is not None and "HTTP 500" in sent[0].error
    assert "secret-token" not in sent[0].error


async def test_webhook_unreachable_is_reported_without_its_url(store: SqlEventStore) -> None:
    url = f"http://127.0.0.1:{unused_port()}/hooks/secret-token"

    sent, _ = await notify(
        store, workflows.success(), Settings(webhook_url=url), WebhookNotifier(url)
    )

    assert sent[0].status == "failed"
    assert sent[0].error is not None and "secret-token" not in sent[0].error


def delivery(event: Event, count: int = 1) -> Message:
    return Message(
        routing_key=event.event_type,
        body=encode(event),
        message_id=str(event.event_id),
        headers={},
        delivery_count=count,
    )


async def test_duplicate_completion_and_late_failure_send_one_email(store: SqlEventStore) -> None:
    workflow = workflows.success()
    await record(store, workflow.events)
    late = workflow.failed("trade_execution", "deadline passed after completion").events[-1]
    await record(store, [late])
    async with smtp_server() as (port, mailbox):
        settings = smtp_settings(port)
        step = NotifyStep(settings, [SmtpNotifier(settings)], sleep=RecordingSleep())
        consumer = Consumer("notify", store, InMemoryBus(), step.handle, NOTIFICATION.follows)
        completion = workflow.events[-2]
        await consumer.handle_message(delivery(completion))
        await consumer.handle_message(delivery(completion, count=2))
        await consumer.handle_message(delivery(late))
        # A fresh process (no in-memory claims) sees the recorded NotificationSent instead.
        restarted = NotifyStep(settings, [SmtpNotifier(settings)], sleep=RecordingSleep())
        again = (await restarted.handle(late, HandlerContext(service="notify", store=store))).events

    assert len(mailbox.messages) == 1
    assert again == []
    recorded = [r.event for r in await store.read_correlation(workflow.id)]
    notifications = [e for e in recorded if isinstance(e, NotificationSent)]
    assert [(e.channel, e.status) for e in notifications] == [("email", "sent")]
    assert notifications[0].causation_id == str(completion.event_id)


async def test_an_unreadable_workflow_event_still_gets_the_ending_reported(
    store: SqlEventStore,
) -> None:
    # A NaN indicator value in a trace is stored as null and no longer validates when read back.
    workflow = workflows.Workflow().started().signal(missing_score=True).planned().executed()
    workflow.completed()
    async with smtp_server() as (port, mailbox):
        settings = smtp_settings(port)
        sent, _ = await notify(store, workflow, settings, SmtpNotifier(settings))

    assert [(e.channel, e.status) for e in sent] == [("email", "sent")]
    assert mailbox.messages[0]["Subject"] == "[SUCCESS] Alchemiser - PAPER Trading Report"
