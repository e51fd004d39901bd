"""The notify service turns on exactly the channels its settings configure."""

from __future__ import annotations

from services.notify.service import configured_notifiers, definition
from shared.settings import Settings


def test_no_smtp_host_and_no_webhook_means_no_channel() -> None:
    assert configured_notifiers(Settings(smtp_host=None, webhook_url=None)) == []


def test_smtp_host_turns_email_on_and_webhook_url_the_webhook() -> None:
    settings = Settings(smtp_host="smtp.example.com", webhook_url="https://hooks.example.com/x")

    assert [n.channel for n in configured_notifiers(settings)] == ["email", "webhook"]


def test_the_service_consumes_only_the_endings_and_the_halts_it_reports_on() -> None:
    service = definition(Settings())

    assert service.name == "notify"
    assert service.event_types == (
        "WorkflowCompleted",
        "WorkflowFailed",
        "TradingHalted",
        "TradingResumed",
    )
