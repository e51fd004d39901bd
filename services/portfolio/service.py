"""The portfolio service: `SignalGenerated` in, `RebalancePlanned` out."""

from __future__ import annotations

from services.portfolio import liquidation
from services.portfolio.plan_step import PlanStep
from shared.broker.accounts import BrokerAccounts
from shared.broker.factory import BrokerFactory
from shared.service.runtime import ServiceDefinition
from shared.settings import Settings

DEFAULT_PORT = 8002


def definition(settings: Settings) -> ServiceDefinition:
    factory = BrokerFactory(settings)
    brokers = BrokerAccounts(factory)
    step = PlanStep(settings, brokers.get)
    return ServiceDefinition(
        name="portfolio",
        default_port=DEFAULT_PORT,
        event_types=("SignalGenerated",),
        handler=step.handle,
        periodic=(liquidation.due_checks(step.check_liquidation, settings.timer_poll_s),),
        on_stop=(brokers.close, factory.close),
    )
