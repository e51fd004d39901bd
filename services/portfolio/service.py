"""The portfolio service: `SignalGenerated` in, `RebalancePlanned` out."""

from __future__ import annotations

from services.portfolio import liquidation
from services.portfolio.plan_step import PlanStep
from shared.broker.accounts import BrokerAccounts
from shared.broker.factory import BrokerFactory
from shared.service.runtime import ServiceDefinition, ServiceRuntime
from shared.settings import Settings
from shared.workflow import PORTFOLIO_ANALYSIS


def definition(settings: Settings) -> ServiceDefinition:
    factory = BrokerFactory(settings)
    brokers = BrokerAccounts(factory)
    step = PlanStep(settings, brokers.get)

    async def liquidation_checks(runtime: ServiceRuntime) -> None:
        await liquidation.check_loop(
            runtime, lambda timer, payload: step.check_liquidation(timer, payload, runtime)
        )

    return ServiceDefinition(
        name="portfolio",
        event_types=PORTFOLIO_ANALYSIS.follows,
        handler=step.handle,
        background=(liquidation_checks,),
        on_stop=(brokers.close, factory.close),
    )
