"""The portfolio service's event shell: `SignalGenerated` in, `RebalancePlanned` out."""

from __future__ import annotations

from collections.abc import Sequence

from shared.events import Event
from shared.messaging.consumer import HandlerContext
from shared.service.runtime import ServiceDefinition
from shared.settings import Settings

DEFAULT_PORT = 8002


async def handle(event: Event, context: HandlerContext) -> Sequence[Event]:
    """Planning arrives with the portfolio issue; until then the service consumes its input
    exactly once (the inbox records it) and emits nothing."""
    return ()


def definition(settings: Settings) -> ServiceDefinition:
    return ServiceDefinition(
        name="portfolio",
        default_port=DEFAULT_PORT,
        event_types=("SignalGenerated",),
        handler=handle,
    )
