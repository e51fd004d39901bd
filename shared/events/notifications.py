"""`NotificationSent`: one per channel per workflow, after that channel's retries end
(docs/trading-rules.md, Report trigger / Delivery retries)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.events.envelope import Event


class NotificationSent(Event):
    event_type: Literal["NotificationSent"] = "NotificationSent"
    schema_version: Literal[1] = 1
    channel: Literal["email", "webhook"]
    status: Literal["sent", "failed"]
    attempts: int = Field(ge=0)
    error: str | None = None
