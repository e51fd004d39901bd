"""A hand-written notifier for the notify tests: records what it was given and fails on cue."""

from __future__ import annotations

from services.notify.channels.port import ChannelName, DeliveryError
from services.notify.rendering import RenderedReport


class RecordingNotifier:
    def __init__(
        self, channel: ChannelName = "email", *, failures: int = 0, target: str | None = None
    ) -> None:
        self._channel: ChannelName = channel
        self._target = target
        self.failures = failures
        self.calls = 0
        self.sent: list[RenderedReport] = []

    @property
    def channel(self) -> ChannelName:
        return self._channel

    @property
    def target(self) -> str | None:
        return self._target

    async def send(self, report: RenderedReport) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise DeliveryError(f"{self._channel} down (call {self.calls})")
        self.sent.append(report)


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
