"""`python -m tests.chaos.loopback_alpaca URL ARGS...`: the `alchemiser` command (`alchemiser
ARGS...`) with `ALCHEMISER_BROKER=alpaca` pointed at the loopback Alpaca server at URL, so a
chaos test can run (and SIGKILL) a service process against the strict loopback its own process
serves. Only a loopback URL is accepted (the Alpaca adapter refuses any other)."""

from __future__ import annotations

import sys

from services.cli import main
from shared.broker import factory
from shared.broker.alpaca import AlpacaBroker
from shared.broker.port import Broker
from shared.broker.request_budget import BudgetShare
from shared.settings import Settings


def loopback_brokers(url: str) -> None:
    def broker_for(
        settings: Settings, account_id: str, *, share: BudgetShare, **_: object
    ) -> Broker:
        return AlpacaBroker.from_settings(
            settings, share=share, account_id=account_id, base_url_override=url
        )

    factory.broker_for = broker_for  # type: ignore[assignment]


if __name__ == "__main__":
    url, *arguments = sys.argv[1:]
    loopback_brokers(url)
    sys.argv = ["alchemiser", *arguments]
    main()
