"""The execution service's event shell: `RebalancePlanned` in, orders and `TradeExecuted` out,
with the due timers that drive the state machine between events
(docs/trading-rules.md, Durable timers)."""

from __future__ import annotations

from services.execution import timer_loop
from services.execution.executor import Executor
from shared.broker.factory import BrokerFactory
from shared.broker.request_budget import BudgetShare
from shared.events.control import TradingHalted
from shared.service.runtime import ServiceDefinition
from shared.settings import Settings
from shared.workflow import TRADE_EXECUTION


def definition(settings: Settings) -> ServiceDefinition:
    factory = BrokerFactory(settings, share=BudgetShare.EXECUTION)
    executor = Executor(settings, factory)
    return ServiceDefinition(
        name="execution",
        event_types=(*TRADE_EXECUTION.follows, TradingHalted.EVENT_TYPE),
        handler=executor.handle,
        periodic=(timer_loop.due_timers(executor, settings.timer_poll_s),),
        on_stop=(executor.close, factory.close),
    )
