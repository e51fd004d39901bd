"""In-process bus for the embedded single-process mode and unit tests: asyncio only, with the
same routing, acknowledgement, redelivery and dead-letter semantics as the RabbitMQ bus."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import structlog

from shared.bus.dead_letter import dead_letter_headers, failure_reason
from shared.bus.drain import wait_until_idle
from shared.bus.errors import BusConnectionError, UnknownQueueError, UnroutableMessageError
from shared.bus.port import BusHealth, DeadLetterHook, Handler, Message, OutgoingMessage
from shared.bus.topic import topic_matches

log = structlog.get_logger(__name__)


@dataclass
class _Queue:
    """A queue with its bindings, its ready messages (FIFO) and its dead-letter queue."""

    name: str
    bindings: set[str] = field(default_factory=set)
    ready: deque[Message] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    dead: list[Message] = field(default_factory=list)

    def put(self, message: Message) -> None:
        self.ready.append(message)
        self.arrived.set()

    def requeue(self, message: Message) -> None:
        """Back at the head, as a broker returns an unacknowledged message to its queue."""
        self.ready.appendleft(message)
        self.arrived.set()

    async def take(self) -> Message:
        while not self.ready:
            self.arrived.clear()
            await self.arrived.wait()
        return self.ready.popleft()


@dataclass
class _Consumer:
    queue: _Queue
    handler: Handler
    on_dead_letter: DeadLetterHook | None
    worker: asyncio.Task[None] | None = None
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: Message | None = None


class InMemoryBus:
    """Queues outlive `close()` like durable queues on a broker; consumers do not."""

    def __init__(
        self,
        *,
        exchange: str = "alchemiser.events",
        max_deliveries: int = 5,
        drain_timeout_s: float = 10.0,
    ) -> None:
        if max_deliveries < 1:
            raise ValueError(f"max_deliveries must be at least 1, got {max_deliveries}")
        self._exchange = exchange
        self._max_deliveries = max_deliveries
        self._drain_timeout_s = drain_timeout_s
        self._queues: dict[str, _Queue] = {}
        self._consumers: list[_Consumer] = []
        self._connected = False
        self._draining = False

    async def connect(self, *, timeout_s: float = 10.0) -> None:
        self._connected = True
        self._draining = False
        for consumer in self._consumers:
            self._start(consumer)

    async def close(self) -> None:
        """Lets each handler finish the message it holds (up to `drain_timeout_s`); a message
        still held after that goes back to the head of its queue, never lost."""
        self._draining = True
        await wait_until_idle(
            [c.idle for c in self._consumers if c.worker is not None], self._drain_timeout_s
        )
        self._connected = False
        workers = [c.worker for c in self._consumers if c.worker is not None]
        for worker in workers:
            worker.cancel()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._consumers.clear()

    async def publish(
        self,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._require_connected(f"publish {routing_key} {message_id}")
        targets = [q for q in self._queues.values() if _bound(q, routing_key)]
        if not targets:
            raise UnroutableMessageError(
                f"no queue is bound to routing key {routing_key!r} on exchange "
                f"{self._exchange!r} (message {message_id}): subscribe the consuming service "
                "before publishing, or the event would be lost"
            )
        message = Message(
            routing_key=routing_key,
            body=body,
            message_id=message_id,
            headers=dict(headers or {}),
            delivery_count=0,
        )
        for queue in targets:
            queue.put(message)

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> None:
        for outgoing in messages:
            await self.publish(
                outgoing.routing_key,
                outgoing.body,
                message_id=outgoing.message_id,
                headers=outgoing.headers,
            )

    async def subscribe(
        self,
        queue: str,
        routing_keys: Sequence[str],
        handler: Handler,
        *,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None:
        declared = self._queues.setdefault(queue, _Queue(queue))
        declared.bindings.update(routing_keys)
        consumer = _Consumer(declared, handler, on_dead_letter)
        self._consumers.append(consumer)
        if self._connected:
            self._start(consumer)

    def health(self) -> BusHealth:
        attached = sum(1 for c in self._consumers if c.worker is not None and not c.worker.done())
        expected = len(self._consumers)
        if not self._connected:
            reason: str | None = "in-memory bus is not connected (connect() not called)"
        elif attached < expected:
            reason = f"{attached} of {expected} consumers attached"
        else:
            reason = None
        return BusHealth(self._connected, expected, attached if self._connected else 0, reason)

    async def dead_letters(self, queue: str) -> list[Message]:
        declared = self._queues.get(queue)
        if declared is None:
            raise UnknownQueueError(
                f"queue {queue!r} does not exist on exchange {self._exchange!r}: "
                "subscribe to it first"
            )
        dead, declared.dead = declared.dead, []
        return dead

    def _require_connected(self, action: str) -> None:
        if not self._connected:
            raise BusConnectionError(f"cannot {action}: the in-memory bus is not connected")

    def _start(self, consumer: _Consumer) -> None:
        if consumer.worker is None or consumer.worker.done():
            consumer.worker = asyncio.create_task(
                self._consume(consumer), name=f"bus-consumer-{consumer.queue.name}"
            )

    async def _consume(self, consumer: _Consumer) -> None:
        """Retries the head message in place until it succeeds or is dead-lettered, so the queue
        stays FIFO and one poison message cannot block the ones behind it for long."""
        queue = consumer.queue
        while not self._draining:
            consumer.idle.set()
            message = await queue.take()
            consumer.idle.clear()
            try:
                await self._handle(consumer, message)
            except asyncio.CancelledError:
                queue.requeue(consumer.in_flight or message)
                raise
            finally:
                consumer.in_flight = None
        consumer.idle.set()

    async def _handle(self, consumer: _Consumer, message: Message) -> None:
        queue = consumer.queue
        while True:
            message = replace(message, delivery_count=message.delivery_count + 1)
            consumer.in_flight = message
            try:
                await consumer.handler(message)
            except Exception as error:
                if message.delivery_count < self._max_deliveries:
                    log.warning(
                        "bus.handler_failed",
                        queue=queue.name,
                        event_id=message.message_id,
                        delivery_count=message.delivery_count,
                        error=failure_reason(error),
                    )
                    continue
                await self._dead_letter(consumer, message, failure_reason(error))
            return

    async def _dead_letter(self, consumer: _Consumer, message: Message, reason: str) -> None:
        queue = consumer.queue
        headers = dead_letter_headers(
            message.headers,
            reason=reason,
            queue=queue.name,
            attempts=message.delivery_count,
            routing_key=message.routing_key,
        )
        queue.dead.append(replace(message, headers=headers, delivery_count=1))
        log.error(
            "bus.dead_lettered",
            queue=queue.name,
            event_id=message.message_id,
            attempts=message.delivery_count,
            error=reason,
        )
        if consumer.on_dead_letter is None:
            return
        try:
            await consumer.on_dead_letter(message, reason)
        except Exception as error:
            log.exception(
                "bus.dead_letter_hook_failed",
                queue=queue.name,
                event_id=message.message_id,
                error=failure_reason(error),
            )


def _bound(queue: _Queue, routing_key: str) -> bool:
    return any(topic_matches(pattern, routing_key) for pattern in queue.bindings)
