"""The execution service's event shell: `RebalancePlanned` in, orders and `TradeExecuted` out,
with the due timers that drive the state machine between events (trading spec §3.16)."""

from __future__ import annotations

from services.execution import timer_loop
from services.execution.executor import Executor
from shared.broker.factory import BrokerFactory
from shared.service.runtime import ServiceDefinition
from shared.settings import Settings

DEFAULT_PORT = 8003


def definition(settings: Settings) -> ServiceDefinition:
    factory = BrokerFactory(settings)
    executor = Executor(settings, factory)
    return ServiceDefinition(
        name="execution",
        default_port=DEFAULT_PORT,
        event_types=("RebalancePlanned",),
        handler=executor.handle,
        periodic=(timer_loop.due_timers(executor, settings.timer_poll_s),),
        on_stop=(executor.close, factory.close),
    )
