"""The message bus: moves opaque event messages between services (docs/architecture.md, Bus)."""

from shared.bus.dead_letter import (
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    QUEUE_HEADER,
    ROUTING_KEY_HEADER,
)
from shared.bus.errors import (
    BusConnectionError,
    BusError,
    BusPublishError,
    BusTopologyError,
    UnknownQueueError,
    UnroutableMessageError,
)
from shared.bus.memory import InMemoryBus
from shared.bus.port import Bus, BusHealth, DeadLetterHook, Handler, Message, OutgoingMessage
from shared.bus.rabbitmq import RabbitMqBus

__all__ = [
    "ATTEMPTS_HEADER",
    "ERROR_HEADER",
    "QUEUE_HEADER",
    "ROUTING_KEY_HEADER",
    "Bus",
    "BusConnectionError",
    "BusError",
    "BusHealth",
    "BusPublishError",
    "BusTopologyError",
    "DeadLetterHook",
    "Handler",
    "InMemoryBus",
    "Message",
    "OutgoingMessage",
    "RabbitMqBus",
    "UnknownQueueError",
    "UnroutableMessageError",
]
