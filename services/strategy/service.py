"""The strategy service: `WorkflowStarted` in, `SignalGenerated` out; it also owns the workflow
endpoints and status."""

from __future__ import annotations

from services.strategy.halt_api import halt_router
from services.strategy.signal_step import SignalStep
from services.strategy.watchdog import deadline_watchdog
from services.strategy.workflows_api import workflow_router
from shared.broker.accounts import BrokerAccounts
from shared.broker.factory import BrokerFactory
from shared.broker.request_budget import BudgetShare
from shared.service.runtime import ServiceDefinition
from shared.settings import Settings
from shared.workflow import SIGNAL_GENERATION


def definition(settings: Settings) -> ServiceDefinition:
    factory = BrokerFactory(settings, share=BudgetShare.STRATEGY)
    brokers = BrokerAccounts(factory)
    step = SignalStep(settings, brokers.get)
    return ServiceDefinition(
        name="strategy",
        event_types=SIGNAL_GENERATION.follows,
        handler=step.handle,
        routers=lambda runtime: [workflow_router(runtime), halt_router(runtime)],
        periodic=(deadline_watchdog(settings.workflow_deadline_s),),
        on_stop=(brokers.close, factory.close),
        collectors=(step.evaluated,),
    )
