"""The notify handler over a real (SQLite) event store and fake channels: one report per
channel per workflow, whatever arrives twice, and every delivery's verdict recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from services.notify.notify_step import NotifyStep
from shared.events import Event, NotificationSent, WorkflowFailed
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import HandlerContext
from shared.settings import Settings
from tests.unit.notify import workflows
from tests.unit.notify.fakes import RecordingNotifier, RecordingSleep


@pytest.fixture
async def context(tmp_path: Path) -> AsyncIterator[HandlerContext]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await upgrade(url)
    store = SqlEventStore(url)
    yield HandlerContext(service="notify", store=store)
    await store.close()


async def record(context: HandlerContext, events: Sequence[Event], stream: str) -> None:
    if events:
        async with context.store.unit_of_work() as uow:
            await uow.append(f"{events[0].correlation_id}/{stream}", None, list(events))


async def recorded(context: HandlerContext, workflow_id: str) -> list[Event]:
    return [r.event for r in await context.store.read_correlation(workflow_id)]


async def handle_and_commit(
    step: NotifyStep, event: Event, context: HandlerContext
) -> Sequence[Event]:
    """What the consumer does: handle, then append what the handler emitted."""
    emitted = (await step.handle(event, context)).events
    await record(context, emitted, "notify")
    return emitted


def step_with(*notifiers: RecordingNotifier, neutral: bool = False) -> NotifyStep:
    return NotifyStep(Settings(email_neutral_mode=neutral), notifiers, sleep=RecordingSleep())


async def test_completion_sends_one_report_per_channel_and_records_each(
    context: HandlerContext,
) -> None:
    workflow = workflows.success()
    await record(context, workflow.events, "all")
    email, webhook = RecordingNotifier("email"), RecordingNotifier("webhook")

    emitted = (await step_with(email, webhook).handle(workflow.events[-1], context)).events

    assert [r.subject for r in email.sent] == ["[SUCCESS] Alchemiser - PAPER Trading Report"]
    assert len(webhook.sent) == 1
    sent = {e.channel: e for e in emitted if isinstance(e, NotificationSent)}
    assert sent.keys() == {"email", "webhook"}
    assert all(e.status == "sent" and e.attempts == 1 and e.error is None for e in sent.values())
    assert all(e.causation_id == str(workflow.events[-1].event_id) for e in emitted)
    assert all(e.correlation_id == workflow.id for e in emitted)


async def test_events_before_the_end_send_nothing(context: HandlerContext) -> None:
    workflow = workflows.success()
    await record(context, workflow.events, "all")
    email = RecordingNotifier()
    step = step_with(email)

    for event in workflow.events[:-1]:
        assert (await step.handle(event, context)).events == ()

    assert email.sent == []


async def test_a_redelivered_completion_sends_no_second_email(context: HandlerContext) -> None:
    workflow = workflows.success()
    await record(context, workflow.events, "all")
    email = RecordingNotifier()

    await handle_and_commit(step_with(email), workflow.events[-1], context)
    second = await handle_and_commit(step_with(email), workflow.events[-1], context)

    assert second == []
    assert len(email.sent) == 1


async def test_a_late_failure_after_completion_sends_no_second_email(
    context: HandlerContext,
) -> None:
    workflow = workflows.success()
    await record(context, workflow.events, "all")
    email = RecordingNotifier()
    await handle_and_commit(step_with(email), workflow.events[-1], context)
    late = workflow.failed("trade_execution", "deadline passed late").events[-1]
    await record(context, [late], "watchdog")

    assert await handle_and_commit(step_with(email), late, context) == []
    assert len(email.sent) == 1


async def test_two_endings_handled_at_once_send_one_email(context: HandlerContext) -> None:
    workflow = workflows.success().failed("trade_execution", "late")
    await record(context, workflow.events, "all")
    email = RecordingNotifier()
    step = step_with(email)

    results = await asyncio.gather(
        step.handle(workflow.events[-2], context), step.handle(workflow.events[-1], context)
    )

    assert len(email.sent) == 1
    assert sum(len(result.events) for result in results) == 1


async def test_a_channel_that_already_failed_is_not_sent_again(context: HandlerContext) -> None:
    workflow = workflows.strategy_failure()
    await record(context, workflow.events, "all")
    down = RecordingNotifier(failures=3)
    first = await handle_and_commit(step_with(down), workflow.events[-1], context)
    assert [(e.status, e.attempts) for e in first if isinstance(e, NotificationSent)] == [
        ("failed", 3)
    ]
    up = RecordingNotifier()

    assert await handle_and_commit(step_with(up), workflow.events[-1], context) == []
    assert up.sent == []


async def test_smtp_down_is_reported_and_never_fails_the_workflow(
    context: HandlerContext,
) -> None:
    workflow = workflows.success()
    await record(context, workflow.events, "all")
    email, webhook = RecordingNotifier("email", failures=99), RecordingNotifier("webhook")

    emitted = (await step_with(email, webhook).handle(workflow.events[-1], context)).events

    by_channel = {e.channel: e for e in emitted if isinstance(e, NotificationSent)}
    assert by_channel["email"].status == "failed"
    assert by_channel["email"].attempts == 3
    assert by_channel["email"].error == "email down (call 3)"
    assert by_channel["webhook"].status == "sent"
    assert not any(isinstance(e, WorkflowFailed) for e in emitted)


async def test_the_failure_report_is_built_from_the_events_in_the_store(
    context: HandlerContext,
) -> None:
    workflow = workflows.deadline_failure()
    await record(context, workflow.events, "all")
    email = RecordingNotifier()

    await step_with(email).handle(workflow.events[-1], context)

    assert "REBALANCE PLAN" in email.sent[0].text
    assert "it stalled in: Trade execution" in email.sent[0].text


async def test_neutral_mode_setting_reaches_the_report(context: HandlerContext) -> None:
    workflow = workflows.success()
    await record(context, workflow.events, "all")
    email = RecordingNotifier()

    await step_with(email, neutral=True).handle(workflow.events[-1], context)

    assert "$99,989.98" not in email.sent[0].html


async def test_with_no_channel_configured_nothing_is_emitted(context: HandlerContext) -> None:
    workflow = workflows.success()
    await record(context, workflow.events, "all")

    assert (await step_with().handle(workflow.events[-1], context)).events == []


async def test_a_dry_run_is_reported_nowhere_unless_asked(context: HandlerContext) -> None:
    """(docs/trading-rules.md, Dry runs)"""
    workflow = workflows.dry_run()
    await record(context, workflow.events, "all")
    email, chat = RecordingNotifier("email"), RecordingNotifier("apprise")

    outcome = await step_with(email, chat).handle(workflow.events[-1], context)

    assert outcome.events == () or list(outcome.events) == []
    assert email.sent == [] and chat.sent == []


async def test_a_dry_run_asked_for_is_reported_as_one_with_its_previewed_orders(
    context: HandlerContext,
) -> None:
    workflow = workflows.dry_run(email=True)
    await record(context, workflow.events, "all")
    email = RecordingNotifier("email")

    emitted = await handle_and_commit(step_with(email), workflow.events[-1], context)

    assert [e.channel for e in emitted if isinstance(e, NotificationSent)] == ["email"]
    (report,) = email.sent
    assert report.subject == "[DRY RUN][SUCCESS] Alchemiser - PAPER Trading Report"
    for part in (report.text, report.html, report.summary):
        assert "DRY RUN: nothing was sent to the broker" in part
    assert "ORDERS PREVIEWED (a dry run: none was sent)" in report.text
    assert "350.50 limit $85.58" in report.text
    assert "Would skip BUY TLT: quantity rounds to zero" in report.text
    assert "Orders previewed" in report.html and "85.57" in report.html
    assert "would BUY TQQQ" in report.summary
