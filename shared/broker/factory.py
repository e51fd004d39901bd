"""Which broker a service talks to: the simulated world unless `ALCHEMISER_BROKER=alpaca`
(trading spec §0). One instance per account; callers keep and close it."""

from __future__ import annotations

from shared import market_clock
from shared.broker.port import Broker
from shared.broker.simulated import Scenario, SimulatedBroker
from shared.marketdata.bars import BarSnapshot
from shared.marketdata.barstore import BarStore
from shared.marketdata.sample import ensure_sample
from shared.settings import BrokerKind, Settings


def broker_for(
    settings: Settings,
    account_id: str,
    *,
    bars: BarSnapshot | None = None,
    scenario: Scenario | None = None,
) -> Broker:
    """The configured broker for `account_id`.

    The simulated broker prices from the bar store in `ALCHEMISER_DATA_DIR` (the synthetic
    sample is generated there when there is none, §6.3) unless `bars` is given; `scenario` is
    for tests. Alpaca serves the one account `default` and refuses others.
    """
    if settings.broker is BrokerKind.ALPACA:
        from shared.broker.alpaca import AlpacaBroker

        return AlpacaBroker.from_settings(settings, account_id=account_id)
    snapshot = bars if bars is not None else bar_store_snapshot(settings)
    return SimulatedBroker(
        settings.resolved_database_url, account_id, settings, snapshot, scenario=scenario
    )


def bar_store_snapshot(settings: Settings) -> BarSnapshot:
    store = BarStore(settings.data_dir)
    if not store.exists():
        end_before = market_clock.simulated_now(settings.sim_now, None)
        ensure_sample(settings.data_dir, None, end_before)
    return store.load()
