"""The strategy service's event shell: `WorkflowStarted` in, `SignalGenerated` out; it also
owns the workflow endpoints and status."""

from __future__ import annotations

from collections.abc import Sequence

from services.strategy.workflows_api import workflow_router
from shared.events import Event
from shared.messaging.consumer import HandlerContext
from shared.service.runtime import ServiceDefinition
from shared.settings import Settings

DEFAULT_PORT = 8001


async def handle(event: Event, context: HandlerContext) -> Sequence[Event]:
    """Signal generation arrives with the strategy-engine issue; until then the service
    consumes its input exactly once (the inbox records it) and emits nothing."""
    return ()


def definition(settings: Settings) -> ServiceDefinition:
    return ServiceDefinition(
        name="strategy",
        default_port=DEFAULT_PORT,
        event_types=("WorkflowStarted",),
        handler=handle,
        routers=lambda runtime: [workflow_router(runtime)],
    )
