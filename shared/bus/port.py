"""The bus port: what a service may assume about moving opaque event messages between services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Message:
    """One delivery of an event as the bus sees it: bytes plus the metadata routing needs.

    The bus never decodes `body`; the consumer loop above it does (and may raise, which counts as
    a failed attempt like any other handler error).
    """

    routing_key: str
    body: bytes
    message_id: str
    headers: Mapping[str, str]
    delivery_count: int


@dataclass(frozen=True)
class OutgoingMessage:
    """An event to publish; `message_id` is the event id so consumers can deduplicate."""

    routing_key: str
    body: bytes
    message_id: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BusHealth:
    """Readiness as the service's `/readyz` reports it: a connection alone is not enough, the
    consumers the service subscribed must really be attached, or events pile up unseen."""

    connected: bool
    consumers_expected: int
    consumers_attached: int
    reason: str | None = None

    @property
    def ready(self) -> bool:
        return self.connected and self.consumers_attached >= self.consumers_expected


Handler = Callable[[Message], Awaitable[None]]
"""Returns -> the message is acknowledged; raises -> the attempt failed and it is redelivered."""

DeadLetterHook = Callable[[Message, str], Awaitable[None]]
"""Called with the message and the failure reason once the bus has moved it to the DLQ."""


class Bus(Protocol):
    """Topic routing (routing key = event type, `#` = everything), manual acks after the handler,
    bounded redelivery and a dead-letter queue per subscribed queue."""

    async def connect(self, *, timeout_s: float = 10.0) -> None: ...

    async def close(self) -> None: ...

    async def publish(
        self,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Returns once the broker has confirmed the message; raises if it did not."""
        ...

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publishes with pipelined confirms; every message is confirmed when this returns."""
        ...

    async def subscribe(
        self,
        queue: str,
        routing_keys: Sequence[str],
        handler: Handler,
        *,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None: ...

    def health(self) -> BusHealth: ...

    async def dead_letters(self, queue: str) -> list[Message]:
        """Reads (and acknowledges) everything in the queue's DLQ, for operators and tests."""
        ...
