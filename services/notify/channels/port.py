"""The notifier port: every channel (email, webhook, each apprise URL) takes the same rendered
report, so adding a channel is one adapter, not a change to the handler."""

from __future__ import annotations

from typing import Literal, Protocol

from services.notify.rendering import RenderedReport

ChannelName = Literal["email", "webhook", "apprise"]


class DeliveryError(Exception):
    """A channel could not deliver; the message says why without secrets (no password, no
    webhook URL, whose path is its credential, no apprise token)."""


class Notifier(Protocol):
    @property
    def channel(self) -> ChannelName: ...

    @property
    def target(self) -> str | None:
        """Which destination of the channel, when it has several (an apprise URL, redacted)."""
        ...

    async def send(self, report: RenderedReport) -> None:
        """Deliver once or raise `DeliveryError`; retries are the caller's."""
        ...
