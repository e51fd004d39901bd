"""The notify service's event shell: every event in, one report per workflow out."""

from __future__ import annotations

from collections.abc import Sequence

from shared.events import Event
from shared.messaging.consumer import HandlerContext
from shared.service.runtime import ServiceDefinition
from shared.settings import Settings

DEFAULT_PORT = 8004


async def handle(event: Event, context: HandlerContext) -> Sequence[Event]:
    """Reports arrive with the workflow issue; until then the service consumes its input
    exactly once (the inbox records it) and emits nothing."""
    return ()


def definition(settings: Settings) -> ServiceDefinition:
    return ServiceDefinition(
        name="notify",
        default_port=DEFAULT_PORT,
        event_types=("#",),
        handler=handle,
    )
