"""Errors the bus raises; each message names the exchange, queue or routing key and the fix."""

from __future__ import annotations


class BusError(Exception):
    """Base of every bus failure."""


class BusConnectionError(BusError):
    """The broker is unreachable or the connection was lost; safe to retry later."""


class BusPublishError(BusError):
    """The broker did not confirm a message (nacked or returned); the caller must retry it."""


class UnroutableMessageError(BusPublishError):
    """No queue is bound to the routing key, so the event would be silently lost."""


class BusTopologyError(BusError):
    """An exchange or queue exists with settings that differ from what this service declares."""


class UnknownQueueError(BusError):
    """An operation named a queue the bus has never declared."""
