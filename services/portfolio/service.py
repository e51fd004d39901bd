"""The portfolio service: `SignalGenerated` in, `RebalancePlanned` out."""

from __future__ import annotations

from services.portfolio import liquidation
from services.portfolio.plan_step import PlanStep
from shared.broker.accounts import BrokerAccounts
from shared.broker.factory import BrokerFactory
from shared.broker.request_budget import BudgetShare
from shared.service.runtime import ServiceDefinition
from shared.settings import Settings
from shared.workflow import follows_of


def definition(settings: Settings) -> ServiceDefinition:
    factory = BrokerFactory(settings, share=BudgetShare.PORTFOLIO)
    brokers = BrokerAccounts(factory)
    step = PlanStep(settings, brokers.get)
    return ServiceDefinition(
        name="portfolio",
        event_types=follows_of("portfolio"),
        handler=step.handle,
        periodic=(liquidation.due_checks(step.check_liquidation, settings.timer_poll_s),),
        on_stop=(brokers.close, factory.close),
    )
