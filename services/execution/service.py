"""The execution service's event shell: `RebalancePlanned` in, orders and `TradeExecuted` out,
with the timer loop that drives the state machine between events (trading spec §3.16)."""

from __future__ import annotations

from services.execution import timer_loop
from services.execution.executor import Executor
from shared.broker.factory import BrokerFactory
from shared.service.runtime import ServiceDefinition, ServiceRuntime
from shared.settings import Settings
from shared.workflow import TRADE_EXECUTION


def definition(settings: Settings) -> ServiceDefinition:
    factory = BrokerFactory(settings)
    executor = Executor(settings, factory)

    async def run_timers(runtime: ServiceRuntime) -> None:
        executor.on_commit = runtime.relay.wake
        await timer_loop.run(executor, runtime.store, settings.timer_poll_s)

    return ServiceDefinition(
        name="execution",
        event_types=TRADE_EXECUTION.follows,
        handler=executor.handle,
        background=(run_timers,),
        on_stop=(executor.close, factory.close),
    )
