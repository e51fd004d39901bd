"""`NotificationSent`: one per channel (one per URL for apprise) per workflow, after that
delivery's retries end (docs/trading-rules.md, Report trigger / Delivery retries)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.events.envelope import Event


class NotificationSent(Event):
    event_type: Literal["NotificationSent"] = "NotificationSent"
    schema_version: Literal[2] = 2
    channel: Literal["email", "webhook", "apprise"]
    target: str | None = None
    """Which apprise URL, with its secret parts hidden (`tgram://1...p/-100123/`); none for the
    email and the webhook, of which there is one each."""
    status: Literal["sent", "failed"]
    attempts: int = Field(ge=0)
    error: str | None = None
