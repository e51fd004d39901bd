"""The bus over RabbitMQ (aio-pika): a durable topic exchange, one quorum queue per service with
its own dead-letter queue, publisher confirms, manual acks after the handler, bounded redelivery.

Delivery counting. A failed attempt is returned with `basic.reject(requeue=True)`, not
`basic.nack`: from RabbitMQ 4.3 only a reject (or a consumer that dies holding the message)
increments a quorum queue's `x-delivery-count`; a nack returns the message without counting it.
RabbitMQ 3.10-4.2 count both. The header is absent on a first delivery, so the delivery count is
`x-delivery-count + 1`, and at least 2 when the broker flags the delivery as redelivered.

Delivery limit. The bus dead-letters a message itself after `max_deliveries` attempts, with the
reason in its headers. The queue's `x-delivery-limit` is set explicitly (RabbitMQ 3.10 has no
default, 4.x defaults to 20) to a value above `max_deliveries`: it is the broker's safety net for
consumers that die mid-message over and over, and it routes through the same dead-letter exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import partial
from typing import Any, cast

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from pamqp.common import FieldTable
from yarl import URL

from shared.bus.dead_letter import (
    ROUTING_KEY_HEADER,
    dead_letter_headers,
    failure_reason,
)
from shared.bus.drain import wait_until_idle
from shared.bus.errors import (
    BusConnectionError,
    BusError,
    BusPublishError,
    BusTopologyError,
    UnknownQueueError,
    UnroutableMessageError,
)
from shared.bus.port import BusHealth, DeadLetterHook, Handler, Message, OutgoingMessage

log = structlog.get_logger(__name__)

DELIVERY_COUNT_HEADER = "x-delivery-count"
_CONNECTION_ERRORS = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.ChannelClosed,
    ConnectionError,
    TimeoutError,
)
# A consumer tag the broker no longer knows is re-attached after this many supervision ticks, so
# aio-pika's own restore gets the first chance and the two never race on one tag.
_MISSING_TICKS_BEFORE_REATTACH = 2


@dataclass
class _Subscription:
    queue: str
    routing_keys: tuple[str, ...]
    handler: Handler
    on_dead_letter: DeadLetterHook | None
    inbox: asyncio.Queue[AbstractIncomingMessage] = field(default_factory=asyncio.Queue)
    amqp_queue: AbstractQueue | None = None
    consumer_tag: str | None = None
    attached: bool = False
    missing_ticks: int = 0
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    idle_flags: list[asyncio.Event] = field(default_factory=list)


class RabbitMqBus:
    """One robust connection with a confirming publish channel and a consume channel.

    A supervisor task makes the first connection (retrying in the background, so a caller is
    never stuck on a dead broker) and then checks that every subscription's consumer is really
    attached, re-attaching it when aio-pika's reconnect came back without it.
    """

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "alchemiser.events",
        max_deliveries: int = 5,
        broker_delivery_limit: int | None = None,
        prefetch: int = 32,
        reconnect_interval_s: float = 1.0,
        supervise_interval_s: float = 1.0,
        publish_timeout_s: float = 30.0,
        drain_timeout_s: float = 10.0,
        handlers_per_queue: int = 1,
    ) -> None:
        """`handlers_per_queue` > 1 handles that many messages of a queue at once (each handler
        call is I/O-bound: a database commit, a broker call); order is then not kept, which the
        services' handlers do not need — each reads its workflow's history from the store."""
        if handlers_per_queue < 1:
            raise ValueError(f"handlers_per_queue must be at least 1, got {handlers_per_queue}")
        if max_deliveries < 1:
            raise ValueError(f"max_deliveries must be at least 1, got {max_deliveries}")
        delivery_limit = broker_delivery_limit or 2 * max_deliveries
        if delivery_limit < max_deliveries:
            raise ValueError(
                f"broker_delivery_limit ({delivery_limit}) must be at least max_deliveries "
                f"({max_deliveries}), or the broker dead-letters messages without a reason"
            )
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, got {prefetch}")
        self._url = url
        self._safe_url = _without_credentials(url)
        self._exchange_name = exchange
        self._max_deliveries = max_deliveries
        self._delivery_limit = delivery_limit
        self._prefetch = prefetch
        self._reconnect_interval_s = reconnect_interval_s
        self._supervise_interval_s = supervise_interval_s
        self._publish_timeout_s = publish_timeout_s
        self._drain_timeout_s = drain_timeout_s
        self._handlers_per_queue = handlers_per_queue
        self._draining = False

        self._subscriptions: list[_Subscription] = []
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._consume_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._dead_letter_exchange: AbstractExchange | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._opened = asyncio.Event()
        self._topology_error: BusTopologyError | None = None
        self._reason: str | None = "connect() not called"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self._exchange_name}.dlx"

    def queue_arguments(self, queue: str) -> FieldTable:
        """The arguments every declaration of `queue` uses; a queue that already exists with other
        arguments is refused by the broker (PRECONDITION_FAILED), so they must never drift."""
        return {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": self.dead_letter_exchange,
            "x-dead-letter-routing-key": queue,
            "x-delivery-limit": self._delivery_limit,
        }

    async def connect(self, *, timeout_s: float = 10.0) -> None:
        """Waits up to `timeout_s` for the first connection; on timeout raises, and keeps retrying
        in the background so `health()` turns ready once the broker is back."""
        if self._supervisor is None or self._supervisor.done():
            self._topology_error = None
            self._draining = False
            self._opened.clear()
            self._reason = f"connecting to {self._safe_url}"
            self._supervisor = asyncio.create_task(self._supervise(), name="bus-supervisor")
        try:
            await asyncio.wait_for(self._opened.wait(), timeout_s)
        except TimeoutError:
            if self._topology_error is not None:
                raise self._topology_error from None
            raise BusConnectionError(
                f"RabbitMQ at {self._safe_url} is not reachable after {timeout_s} s "
                f"({self._reason}); check ALCHEMISER_RABBITMQ_URL and that the broker is "
                "running. Still retrying in the background."
            ) from None
        if self._topology_error is not None:
            raise self._topology_error

    async def close(self) -> None:
        """Stops deliveries, lets each handler finish the message it holds (up to
        `drain_timeout_s`), then closes; whatever was delivered but not acknowledged goes back
        to its queue on the broker."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        self._draining = True
        if self._is_connected():
            # Only on a live connection: on one being re-established, aio-pika would wait for it.
            for subscription in self._subscriptions:
                if subscription.amqp_queue is not None and subscription.consumer_tag is not None:
                    with contextlib.suppress(*_CONNECTION_ERRORS):
                        await subscription.amqp_queue.cancel(
                            subscription.consumer_tag, timeout=self._drain_timeout_s
                        )
        await wait_until_idle(
            [flag for s in self._subscriptions for flag in s.idle_flags], self._drain_timeout_s
        )
        workers = [worker for s in self._subscriptions for worker in s.workers]
        for worker in workers:
            worker.cancel()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._subscriptions.clear()
        connection, self._connection = self._connection, None
        self._publish_channel = self._consume_channel = None
        self._exchange = self._dead_letter_exchange = None
        self._opened.clear()
        self._reason = "closed"
        if connection is not None:
            connection.close_callbacks.discard(self._on_connection_lost)
            await connection.close()

    async def publish(
        self,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        exchange = self._exchange
        if exchange is None or not self._is_connected():
            raise BusConnectionError(
                f"cannot publish {routing_key} {message_id}: not connected to RabbitMQ at "
                f"{self._safe_url} ({self._reason or 'reconnecting'}); retry it later"
            )
        message = aio_pika.Message(
            body,
            message_id=message_id,
            headers=dict(headers or {}),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            await exchange.publish(
                message, routing_key, mandatory=True, timeout=self._publish_timeout_s
            )
        except aiormq.exceptions.PublishError:
            raise UnroutableMessageError(
                f"no queue is bound to routing key {routing_key!r} on exchange "
                f"{self._exchange_name!r} (message {message_id}): start the consuming service "
                "(it declares its queue) before publishing, or the event would be lost"
            ) from None
        except aiormq.exceptions.DeliveryError as error:
            raise BusPublishError(
                f"RabbitMQ refused message {message_id} ({routing_key}) on exchange "
                f"{self._exchange_name!r}: {error}; retry it"
            ) from error
        except _CONNECTION_ERRORS as error:
            raise BusConnectionError(
                f"message {message_id} ({routing_key}) was not confirmed by RabbitMQ at "
                f"{self._safe_url}: {failure_reason(error)}; retry it"
            ) from error

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> None:
        """All publishes are in flight at once and their confirms awaited together; when some
        fail, the error says how many, and the caller retries the batch (consumers deduplicate)."""
        results = await asyncio.gather(
            *(
                self.publish(m.routing_key, m.body, message_id=m.message_id, headers=m.headers)
                for m in messages
            ),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if not errors:
            return
        first = errors[0]
        if len(errors) == 1 or not isinstance(first, BusError):
            raise first
        raise type(first)(
            f"{len(errors)} of {len(messages)} messages were not confirmed; first: {first}"
        ) from first

    async def subscribe(
        self,
        queue: str,
        routing_keys: Sequence[str],
        handler: Handler,
        *,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None:
        """Declares the queue, its DLQ and bindings and starts consuming; before the first
        connection the subscription is recorded and attached as soon as the broker answers."""
        if not routing_keys:
            raise ValueError(f"subscription to queue {queue!r} needs at least one routing key")
        subscription = _Subscription(queue, tuple(routing_keys), handler, on_dead_letter)
        for number in range(self._handlers_per_queue):
            idle = asyncio.Event()
            subscription.idle_flags.append(idle)
            subscription.workers.append(
                asyncio.create_task(
                    self._consume(subscription, idle), name=f"bus-consumer-{queue}-{number}"
                )
            )
        self._subscriptions.append(subscription)
        if self._connection is None:
            return
        try:
            await self._attach(subscription)
        except BaseException as error:
            self._subscriptions.remove(subscription)
            for worker in subscription.workers:
                worker.cancel()
            if isinstance(error, _CONNECTION_ERRORS):
                raise BusConnectionError(
                    f"cannot subscribe queue {queue!r} on RabbitMQ at {self._safe_url}: "
                    f"{failure_reason(error)}; retry once health() reports connected"
                ) from error
            raise

    def health(self) -> BusHealth:
        expected = len(self._subscriptions)
        if not self._is_connected():
            lost = self._reason or f"connection to {self._safe_url} lost; reconnecting"
            return BusHealth(False, expected, 0, lost)
        missing = [s.queue for s in self._subscriptions if not s.attached]
        reason = (
            f"{expected - len(missing)} of {expected} consumers attached; missing on queues "
            f"{', '.join(missing)}"
            if missing
            else None
        )
        return BusHealth(True, expected, expected - len(missing), reason)

    async def dead_letters(self, queue: str) -> list[Message]:
        connection = self._connection
        if connection is None or not self._is_connected():
            raise BusConnectionError(
                f"cannot read the dead letters of {queue!r}: not connected to RabbitMQ at "
                f"{self._safe_url}"
            )
        channel = await _plain_channel(connection)
        try:
            try:
                dlq = await channel.declare_queue(f"{queue}.dlq", passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                raise UnknownQueueError(
                    f"queue {queue!r} has no dead-letter queue {queue}.dlq on RabbitMQ at "
                    f"{self._safe_url}: subscribe to {queue!r} first"
                ) from None
            messages: list[Message] = []
            while (incoming := await dlq.get(no_ack=False, fail=False)) is not None:
                messages.append(_dead_message(incoming))
                await incoming.ack()
            return messages
        finally:
            await _close_quietly(channel)

    def _is_connected(self) -> bool:
        connection = self._connection
        return (
            connection is not None
            and connection.connected.is_set()
            and self._publish_channel is not None
            and not self._publish_channel.is_closed
            and self._consume_channel is not None
            and not self._consume_channel.is_closed
        )

    async def _supervise(self) -> None:
        while True:
            if self._connection is None:
                try:
                    await self._open()
                except BusTopologyError as error:
                    self._topology_error = error
                    self._reason = str(error)
                    self._opened.set()
                    return
                except Exception as error:
                    self._reason = (
                        f"cannot connect to RabbitMQ at {self._safe_url}: {failure_reason(error)}"
                    )
                    log.warning("bus.connect_failed", reason=self._reason)
                    await asyncio.sleep(self._reconnect_interval_s)
                    continue
                self._reason = None
                self._opened.set()
            else:
                try:
                    await self._check_consumers()
                except Exception:
                    log.exception("bus.consumer_check_failed", url=self._safe_url)
            await asyncio.sleep(self._supervise_interval_s)

    async def _open(self) -> None:
        connection = await aio_pika.connect_robust(
            self._url,
            timeout=max(self._reconnect_interval_s, 5.0),
            reconnect_interval=self._reconnect_interval_s,
        )
        try:
            publish_channel = await connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            consume_channel = await connection.channel(publisher_confirms=False)
            await consume_channel.set_qos(prefetch_count=self._prefetch)
            exchange = await self._declare(
                f"exchange {self._exchange_name!r}",
                publish_channel.declare_exchange(
                    self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                ),
            )
            dead_letter_exchange = await self._declare(
                f"exchange {self.dead_letter_exchange!r}",
                publish_channel.declare_exchange(
                    self.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
                ),
            )
            self._connection = connection
            self._publish_channel, self._consume_channel = publish_channel, consume_channel
            self._exchange, self._dead_letter_exchange = exchange, dead_letter_exchange
            for subscription in self._subscriptions:
                await self._attach(subscription)
        except BaseException:
            self._connection = self._publish_channel = self._consume_channel = None
            self._exchange = self._dead_letter_exchange = None
            await connection.close()
            raise
        connection.close_callbacks.add(self._on_connection_lost)
        connection.reconnect_callbacks.add(self._on_reconnected)

    async def _declare(self, what: str, declaration: Any) -> Any:
        try:
            return await declaration
        except aiormq.exceptions.ChannelPreconditionFailed as error:
            raise BusTopologyError(
                f"{what} already exists on RabbitMQ at {self._safe_url} with other settings "
                f"({error}); delete it (it is recreated on start) or use another name"
            ) from None

    async def _attach(self, subscription: _Subscription) -> None:
        """Declares on a throwaway channel first: a refused declaration closes its channel, and
        that must not be the consume channel every other subscription lives on."""
        connection, channel = self._connection, self._consume_channel
        assert connection is not None and channel is not None
        queue, arguments = subscription.queue, self.queue_arguments(subscription.queue)
        probe = await _plain_channel(connection)
        try:
            await self._declare(
                f"queue {queue!r}", probe.declare_queue(queue, durable=True, arguments=arguments)
            )
            await self._declare(
                f"queue {queue + '.dlq'!r}",
                probe.declare_queue(
                    f"{queue}.dlq", durable=True, arguments={"x-queue-type": "quorum"}
                ),
            )
        finally:
            await _close_quietly(probe)
        dlq = await channel.declare_queue(
            f"{queue}.dlq", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dlq.bind(self.dead_letter_exchange, routing_key=queue)
        amqp_queue = await channel.declare_queue(queue, durable=True, arguments=arguments)
        for routing_key in subscription.routing_keys:
            await amqp_queue.bind(self._exchange_name, routing_key=routing_key)
        subscription.amqp_queue = amqp_queue
        subscription.consumer_tag = await amqp_queue.consume(
            partial(self._on_delivery, subscription), no_ack=False
        )
        subscription.attached = True
        subscription.missing_ticks = 0

    async def _on_delivery(
        self, subscription: _Subscription, incoming: AbstractIncomingMessage
    ) -> None:
        subscription.inbox.put_nowait(incoming)

    def _on_connection_lost(self, *_: object) -> None:
        for subscription in self._subscriptions:
            subscription.attached = False
        log.warning("bus.connection_lost", url=self._safe_url)

    async def _on_reconnected(self, *_: object) -> None:
        log.info("bus.reconnected", url=self._safe_url)
        await self._check_consumers()

    async def _check_consumers(self) -> None:
        """Counts the consumers the broker really delivers to (the underlying channel's consumer
        tags) and re-attaches one that stayed missing, e.g. after a broker restart."""
        connection, channel = self._connection, self._consume_channel
        if connection is None or channel is None or not self._is_connected():
            return
        try:
            underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
            live_tags = underlay.consumers.keys()
        except aiormq.exceptions.ChannelInvalidStateError:
            return
        for subscription in self._subscriptions:
            if subscription.amqp_queue is None:
                await self._attach_later(subscription)
                continue
            subscription.attached = subscription.consumer_tag in live_tags
            if subscription.attached:
                subscription.missing_ticks = 0
                continue
            subscription.missing_ticks += 1
            if subscription.missing_ticks < _MISSING_TICKS_BEFORE_REATTACH:
                continue
            if connection.reconnecting:
                continue
            await self._reattach(subscription)

    async def _attach_later(self, subscription: _Subscription) -> None:
        """A subscription whose first attach was cut short by a lost connection."""
        try:
            await self._attach(subscription)
        except (BusTopologyError, *_CONNECTION_ERRORS) as error:
            log.warning("bus.attach_failed", queue=subscription.queue, error=failure_reason(error))

    async def _reattach(self, subscription: _Subscription) -> None:
        amqp_queue, stale_tag = subscription.amqp_queue, subscription.consumer_tag
        assert amqp_queue is not None
        log.warning("bus.reattaching_consumer", queue=subscription.queue)
        try:
            if stale_tag is not None:
                with contextlib.suppress(*_CONNECTION_ERRORS):
                    await amqp_queue.cancel(stale_tag, timeout=self._publish_timeout_s)
            subscription.consumer_tag = await amqp_queue.consume(
                partial(self._on_delivery, subscription),
                no_ack=False,
                timeout=self._publish_timeout_s,
            )
        except _CONNECTION_ERRORS as error:
            log.warning(
                "bus.reattach_failed", queue=subscription.queue, error=failure_reason(error)
            )
            return
        subscription.attached = True
        subscription.missing_ticks = 0

    async def _consume(self, subscription: _Subscription, idle: asyncio.Event) -> None:
        """One of the subscription's `handlers_per_queue` workers: each handles one message at
        a time (with one worker, in delivery order); prefetch keeps the next ones on the wire.
        Nothing a message does can stop this loop."""
        while not self._draining:
            idle.set()
            incoming = await subscription.inbox.get()
            idle.clear()
            try:
                await self._deliver(subscription, incoming)
            except Exception:
                log.exception(
                    "bus.delivery_failed", queue=subscription.queue, event_id=incoming.message_id
                )
        idle.set()

    async def _deliver(
        self, subscription: _Subscription, incoming: AbstractIncomingMessage
    ) -> None:
        if incoming.channel.is_closed:
            # Its channel died with the connection: the broker has requeued it already.
            return
        message = _to_message(incoming)
        try:
            await subscription.handler(message)
        except Exception as error:
            await self._handle_failure(subscription, incoming, message, error)
            return
        await _settle(incoming.ack(), subscription.queue, message)

    async def _handle_failure(
        self,
        subscription: _Subscription,
        incoming: AbstractIncomingMessage,
        message: Message,
        error: Exception,
    ) -> None:
        reason = failure_reason(error)
        fields = {"queue": subscription.queue, "event_id": message.message_id}
        if message.delivery_count < self._max_deliveries:
            log.warning(
                "bus.handler_failed", delivery_count=message.delivery_count, error=reason, **fields
            )
            await _settle(incoming.reject(requeue=True), subscription.queue, message)
            return
        headers: FieldTable = {}
        headers.update(
            dead_letter_headers(
                message.headers,
                reason=reason,
                queue=subscription.queue,
                attempts=message.delivery_count,
                routing_key=message.routing_key,
            )
        )
        headers.pop(DELIVERY_COUNT_HEADER, None)
        dead_letter_exchange = self._dead_letter_exchange
        try:
            assert dead_letter_exchange is not None
            await dead_letter_exchange.publish(
                aio_pika.Message(
                    message.body,
                    message_id=message.message_id,
                    headers=headers,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                subscription.queue,
                mandatory=True,
                timeout=self._publish_timeout_s,
            )
        except Exception as publish_error:
            log.error(
                "bus.dead_letter_publish_failed",
                error=reason,
                publish_error=failure_reason(publish_error),
                **fields,
            )
            await _settle(incoming.reject(requeue=True), subscription.queue, message)
            return
        await _settle(incoming.ack(), subscription.queue, message)
        log.error("bus.dead_lettered", attempts=message.delivery_count, error=reason, **fields)
        if subscription.on_dead_letter is None:
            return
        try:
            await subscription.on_dead_letter(message, reason)
        except Exception as hook_error:
            log.exception("bus.dead_letter_hook_failed", error=failure_reason(hook_error), **fields)


async def _plain_channel(connection: AbstractRobustConnection) -> AbstractChannel:
    """A channel the robust connection does not restore: one the broker closes after a refused
    declaration or a passive check must stay closed, not be reopened behind our back."""
    channel = aio_pika.Channel(connection, publisher_confirms=False)
    await channel.initialize()
    return channel


async def _close_quietly(channel: AbstractChannel) -> None:
    if not channel.is_closed:
        with contextlib.suppress(*_CONNECTION_ERRORS):
            await channel.close()


async def _settle(settlement: Any, queue: str, message: Message) -> None:
    """An ack or reject on a channel lost meanwhile cannot be delivered; the broker requeues the
    message itself, so this is logged, not raised."""
    try:
        await settlement
    except _CONNECTION_ERRORS as error:
        log.warning(
            "bus.settle_failed",
            queue=queue,
            event_id=message.message_id,
            error=failure_reason(error),
        )


def _to_message(incoming: AbstractIncomingMessage) -> Message:
    raw_headers = incoming.headers or {}
    broker_count = raw_headers.get(DELIVERY_COUNT_HEADER, 0)
    delivery_count = 1 + (broker_count if isinstance(broker_count, int) else 0)
    if incoming.redelivered:
        delivery_count = max(delivery_count, 2)
    return Message(
        routing_key=incoming.routing_key or "",
        body=incoming.body,
        message_id=incoming.message_id or "",
        headers=_string_headers(raw_headers),
        delivery_count=delivery_count,
    )


def _dead_message(incoming: AbstractIncomingMessage) -> Message:
    """A DLQ message with its original routing key: from our header when the bus dead-lettered it,
    from the broker's `x-death` record when the broker's delivery limit did."""
    message = _to_message(incoming)
    routing_key = message.headers.get(ROUTING_KEY_HEADER)
    if routing_key is None:
        deaths = (incoming.headers or {}).get("x-death")
        if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
            keys = deaths[0].get("routing-keys")
            if isinstance(keys, list) and keys:
                routing_key = str(keys[0])
    return replace(message, routing_key=routing_key or message.routing_key, delivery_count=1)


def _string_headers(raw: Mapping[str, Any]) -> dict[str, str]:
    """Scalar AMQP headers as text; tables and arrays (the broker's `x-death`) are left out."""
    headers: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, bytes):
            headers[key] = value.decode("utf-8", errors="replace")
        elif isinstance(value, str | int | float | Decimal):
            headers[key] = str(value)
    return headers


def _without_credentials(url: str) -> str:
    parsed = URL(url)
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}{parsed.path}"
