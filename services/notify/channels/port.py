"""The notifier port: every channel (email, webhook) takes the same rendered report, so adding
a channel is one adapter, not a change to the handler."""

from __future__ import annotations

from typing import Literal, Protocol

from services.notify.rendering import RenderedReport

ChannelName = Literal["email", "webhook"]


class DeliveryError(Exception):
    """A channel could not deliver; the message says why without secrets (no password, no
    webhook URL, whose path is its credential)."""


class Notifier(Protocol):
    @property
    def channel(self) -> ChannelName: ...

    async def send(self, report: RenderedReport) -> None:
        """Deliver once or raise `DeliveryError`; retries are the caller's."""
        ...
