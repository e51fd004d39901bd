"""The behaviour every `Bus` adapter must show; subclassed once per adapter (in-memory here,
RabbitMQ under tests/integration/bus), each providing the `make_bus` fixture."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from shared.bus import (
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    QUEUE_HEADER,
    Bus,
    Message,
    OutgoingMessage,
    UnknownQueueError,
    UnroutableMessageError,
)
from tests.eventually import eventually

BusFactory = Callable[..., Awaitable[Bus]]


@dataclass
class Names:
    """Unique exchange and queue names per test, so runs never see each other's messages."""

    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    queues: list[str] = field(default_factory=list)

    @property
    def exchange(self) -> str:
        return f"test-events-{self.suffix}"

    def queue(self, label: str) -> str:
        name = f"test-{label}-{self.suffix}"
        self.queues.append(name)
        return name


@dataclass
class Recorder:
    """A handler that records every delivery and fails the ones it is told to."""

    failures_before_success: dict[str, int] = field(default_factory=dict)
    always_fail: set[str] = field(default_factory=set)
    deliveries: list[Message] = field(default_factory=list)
    handled: list[Message] = field(default_factory=list)

    async def __call__(self, message: Message) -> None:
        self.deliveries.append(message)
        if message.message_id in self.always_fail:
            raise ValueError(f"cannot handle {message.message_id}")
        remaining = self.failures_before_success.get(message.message_id, 0)
        if remaining:
            self.failures_before_success[message.message_id] = remaining - 1
            raise RuntimeError(f"transient failure on {message.message_id}")
        self.handled.append(message)

    def handled_ids(self) -> list[str]:
        return [m.message_id for m in self.handled]

    def delivery_counts(self, message_id: str) -> list[int]:
        return [m.delivery_count for m in self.deliveries if m.message_id == message_id]


@dataclass
class DeadLetterLog:
    calls: list[tuple[Message, str]] = field(default_factory=list)

    async def __call__(self, message: Message, reason: str) -> None:
        self.calls.append((message, reason))


class UnknownEventTypeError(Exception):
    """What the consumer loop's decoder raises for a type no upcaster knows."""


async def decode_like_the_consumer_loop(message: Message) -> None:
    payload = json.loads(message.body)
    if payload.get("event_type") not in {"OrderFilled"}:
        raise UnknownEventTypeError(
            f"unknown event type {payload.get('event_type')!r} in {message.message_id}"
        )


class BusContract:
    @pytest.fixture
    def names(self) -> Names:
        return Names()

    async def test_routes_by_routing_key_and_everything_by_hash(
        self, make_bus: BusFactory, names: Names
    ) -> None:
        bus = await make_bus()
        fills, everything = Recorder(), Recorder()
        await bus.subscribe(names.queue("execution"), ["OrderFilled"], fills)
        await bus.subscribe(names.queue("notify"), ["#"], everything)

        await bus.publish("SignalGenerated", b"{}", message_id="signal-1")
        await bus.publish("OrderFilled", b"{}", message_id="fill-1")

        await eventually(lambda: len(everything.handled) == 2)
        await eventually(lambda: fills.handled_ids() == ["fill-1"])
        assert sorted(everything.handled_ids()) == ["fill-1", "signal-1"]
        assert {m.routing_key for m in everything.handled} == {"OrderFilled", "SignalGenerated"}

    async def test_publish_to_a_key_no_queue_is_bound_to_is_refused(
        self, make_bus: BusFactory, names: Names
    ) -> None:
        bus = await make_bus()
        await bus.subscribe(names.queue("execution"), ["RebalancePlanned"], Recorder())

        with pytest.raises(UnroutableMessageError, match="OrderFilled"):
            await bus.publish("OrderFilled", b"{}", message_id="fill-1")

    async def test_handler_receives_body_message_id_and_headers(
        self, make_bus: BusFactory, names: Names
    ) -> None:
        bus = await make_bus()
        recorder = Recorder()
        await bus.subscribe(names.queue("portfolio"), ["SignalGenerated"], recorder)

        await bus.publish(
            "SignalGenerated",
            b'{"event_type": "SignalGenerated"}',
            message_id="evt-1",
            headers={"correlation_id": "wf-1"},
        )

        [message] = await eventually(lambda: recorder.handled)
        assert message.body == b'{"event_type": "SignalGenerated"}'
        assert message.message_id == "evt-1"
        assert message.routing_key == "SignalGenerated"
        assert message.headers["correlation_id"] == "wf-1"
        assert message.delivery_count == 1

    async def test_handled_message_is_acknowledged_and_not_delivered_again(
        self, make_bus: BusFactory, names: Names
    ) -> None:
        bus = await make_bus()
        recorder = Recorder()
        await bus.subscribe(names.queue("portfolio"), ["SignalGenerated"], recorder)

        await bus.publish("SignalGenerated", b"{}", message_id="first")
        await eventually(lambda: recorder.handled_ids() == ["first"])
        await bus.publish("SignalGenerated", b"{}", message_id="second")

        await eventually(lambda: recorder.handled_ids() == ["first", "second"])
        assert [m.message_id for m in recorder.deliveries] == ["first", "second"]
        assert await bus.dead_letters(names.queues[0]) == []

    async def test_failing_handler_is_redelivered_with_increasing_delivery_count(
        self, make_bus: BusFactory, names: Names
    ) -> None:
        bus = await make_bus(max_deliveries=5)
        recorder = Recorder(failures_before_success={"plan-1": 2})
        await bus.subscribe(names.queue("execution"), ["RebalancePlanned"], recorder)

        await bus.publish("RebalancePlanned", b"{}", message_id="plan-1")

        await eventually(lambda: recorder.handled_ids() == ["plan-1"])
        assert recorder.delivery_counts("plan-1") == [1, 2, 3]
        assert await bus.dead_letters(names.queues[0]) == []

    async def test_message_failing_max_deliveries_times_is_dead_lettered_and_consumer_goes_on(
        self, make_bus: BusFactory, names: Names
    ) -> None:
        bus = await make_bus(max_deliveries=3)
        queue = names.queue("execution")
        recorder = Recorder(always_fail={"poison"})
        hook = DeadLetterLog()
        await bus.subscribe(queue, ["RebalancePlanned"], recorder, on_dead_letter=hook)

        await bus.publish("RebalancePlanned", b'{"bad": true}', message_id="poison")
        await bus.publish("RebalancePlanned", b"{}", message_id="healthy")

        await eventually(lambda: recorder.handled_ids() == ["healthy"])
        await eventually(lambda: len(hook.calls) == 1)
        assert recorder.delivery_counts("poison") == [1, 2, 3]
        hooked_message, reason = hook.calls[0]
        assert hooked_message.message_id == "poison"
        assert reason == "ValueError: cannot handle poison"

        [dead] = await bus.dead_letters(queue)
        assert dead.message_id == "poison"
        assert dead.body == b'{"bad": true}'
        assert dead.routing_key == "RebalancePlanned"
        assert dead.headers[ERROR_HEADER] == "ValueError: cannot handle poison"
        assert dead.headers[QUEUE_HEADER] == queue
        assert dead.headers[ATTEMPTS_HEADER] == "3"
        assert await bus.dead_letters(queue) == []

    async def test_undecodable_body_and_unknown_event_type_are_dead_lettered(
        self, make_bus: BusFactory, names: Names
    ) -> None:
        bus = await make_bus(max_deliveries=2)
        queue = names.queue("notify")
        hook = DeadLetterLog()
        await bus.subscribe(queue, ["#"], decode_like_the_consumer_loop, on_dead_letter=hook)

        await bus.publish("OrderFilled", b"not json {", message_id="garbled")
        await bus.publish("Mystery", b'{"event_type": "Mystery"}', message_id="unknown")
        await bus.publish("OrderFilled", b'{"event_type": "OrderFilled"}', message_id="fine")

        await eventually(lambda: len(hook.calls) == 2)
        dead = {m.message_id: m for m in await bus.dead_letters(queue)}
        assert set(dead) == {"garbled", "unknown"}
        assert dead["garbled"].headers[ERROR_HEADER].startswith("JSONDecodeError: ")
        assert dead["unknown"].headers[ERROR_HEADER] == (
            "UnknownEventTypeError: unknown event type 'Mystery' in unknown"
        )
        assert dead["unknown"].routing_key == "Mystery"
        assert {m.headers[ATTEMPTS_HEADER] for m in dead.values()} == {"2"}

    async def test_failing_dead_letter_hook_does_not_stop_the_consumer(
        self, make_bus: BusFactory, names: Names
    ) -> None:
        bus = await make_bus(max_deliveries=1)
        queue = names.queue("execution")
        recorder = Recorder(always_fail={"poison"})

        async def broken_hook(message: Message, reason: str) -> None:
            raise OSError("mail server down")

        await bus.subscribe(queue, ["RebalancePlanned"], recorder, on_dead_letter=broken_hook)
        await bus.publish("RebalancePlanned", b"{}", message_id="poison")
        await bus.publish("RebalancePlanned", b"{}", message_id="healthy")

        await eventually(lambda: recorder.handled_ids() == ["healthy"])
        assert [m.message_id for m in await bus.dead_letters(queue)] == ["poison"]

    async def test_publish_batch_delivers_every_message_once(
        self, make_bus: BusFactory, names: Names
    ) -> None:
        bus = await make_bus()
        recorder = Recorder()
        await bus.subscribe(names.queue("notify"), ["#"], recorder)
        batch = [
            OutgoingMessage("OrderFilled", f'{{"n": {n}}}'.encode(), f"fill-{n}", {"n": str(n)})
            for n in range(200)
        ]

        await bus.publish_batch(batch)

        await eventually(lambda: len(recorder.handled) == 200)
        assert sorted(recorder.handled_ids()) == sorted(m.message_id for m in batch)
        assert all(m.headers["n"] == m.message_id.removeprefix("fill-") for m in recorder.handled)

    async def test_publish_batch_with_an_unroutable_message_raises(
        self, make_bus: BusFactory, names: Names
    ) -> None:
        bus = await make_bus()
        await bus.subscribe(names.queue("execution"), ["RebalancePlanned"], Recorder())

        with pytest.raises(UnroutableMessageError, match="Nowhere"):
            await bus.publish_batch(
                [
                    OutgoingMessage("RebalancePlanned", b"{}", "plan-1"),
                    OutgoingMessage("Nowhere", b"{}", "lost-1"),
                ]
            )

    async def test_health_counts_attached_consumers(
        self, make_bus: BusFactory, names: Names
    ) -> None:
        bus = await make_bus()
        await bus.subscribe(names.queue("portfolio"), ["SignalGenerated"], Recorder())
        await bus.subscribe(names.queue("notify"), ["#"], Recorder())

        health = await eventually(lambda: bus.health() if bus.health().ready else None)

        assert health.connected
        assert health.consumers_expected == 2
        assert health.consumers_attached == 2
        assert health.reason is None

    async def test_health_is_not_connected_after_close(
        self, make_bus: BusFactory, names: Names
    ) -> None:
        bus = await make_bus()
        await bus.subscribe(names.queue("portfolio"), ["SignalGenerated"], Recorder())

        await bus.close()

        health = bus.health()
        assert not health.connected
        assert not health.ready
        assert health.reason

    async def test_close_lets_the_running_handler_finish_and_acknowledge(
        self, make_bus: BusFactory, names: Names
    ) -> None:
        bus = await make_bus()
        queue = names.queue("execution")
        release = asyncio.Event()
        started: list[str] = []
        finished: list[str] = []

        async def slow_handler(message: Message) -> None:
            started.append(message.message_id)
            await release.wait()
            finished.append(message.message_id)

        await bus.subscribe(queue, ["RebalancePlanned"], slow_handler)
        await bus.publish("RebalancePlanned", b"{}", message_id="plan-1")
        await eventually(lambda: started == ["plan-1"])

        closing = asyncio.create_task(bus.close())
        release.set()
        await closing
        assert finished == ["plan-1"]

        # Had plan-1 gone back to the queue unacknowledged, it would arrive before the marker.
        await bus.connect()
        recorder = Recorder()
        await bus.subscribe(queue, ["RebalancePlanned"], recorder)
        await bus.publish("RebalancePlanned", b"{}", message_id="marker")
        await eventually(lambda: recorder.handled_ids() == ["marker"])
        assert [m.message_id for m in recorder.deliveries] == ["marker"]

    async def test_dead_letters_of_a_queue_never_declared_is_an_error_naming_it(
        self, make_bus: BusFactory, names: Names
    ) -> None:
        bus = await make_bus()
        missing = names.queue("never-declared")

        with pytest.raises(UnknownQueueError, match=missing):
            await bus.dead_letters(missing)
