"""Which broker a service talks to: the simulated world unless `ALCHEMISER_BROKER=alpaca`
(docs/trading-rules.md, Settings). One instance per account; callers keep and close it. With
Alpaca, each process limits its requests to its share of the key's budget (`request_budget`)."""

from __future__ import annotations

from aiolimiter import AsyncLimiter
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.broker.port import Broker
from shared.broker.request_budget import BudgetShare, RequestBudget
from shared.broker.simulated import Scenario, SimulatedBroker
from shared.eventstore.engine import create_store_engine
from shared.marketdata.bars import BarSnapshot
from shared.marketdata.barstore import BarStore
from shared.settings import BrokerKind, Settings

SHARED_POOL_SIZE = 5


def broker_for(
    settings: Settings,
    account_id: str,
    *,
    share: BudgetShare,
    bars: BarSnapshot | None = None,
    scenario: Scenario | None = None,
    limiter: AsyncLimiter | None = None,
) -> Broker:
    """The configured broker for `account_id`.

    The simulated broker prices from the bar store in `ALCHEMISER_DATA_DIR` unless `bars` is
    given; `scenario` is for tests. Alpaca serves the one account `default` and refuses others,
    and keeps to `share` of the request budget (with `limiter` when the process holds one).
    """
    if settings.broker is BrokerKind.ALPACA:
        from shared.broker.alpaca import AlpacaBroker

        return AlpacaBroker.from_settings(
            settings, account_id=account_id, share=share, limiter=limiter
        )
    snapshot = bars if bars is not None else bar_store_snapshot(settings)
    return SimulatedBroker(
        settings.resolved_database_url, account_id, settings, snapshot, scenario=scenario
    )


def bar_store_snapshot(settings: Settings) -> BarSnapshot:
    """The bar store's bars; a missing store is a `BarStoreMissingError` naming the command that
    makes one (the strategy side writes the synthetic sample before any broker needs bars)."""
    return BarStore(settings.data_dir).load()


class BrokerFactory:
    """The brokers of one service process, one per account on request. With the simulated
    world they share one database engine and one bar snapshot: an engine and a parsed bar store
    per account would, with a few hundred accounts, exhaust the database's connections and the
    process's memory. With Alpaca they share one request limiter: the process's `share` of the
    key's budget."""

    def __init__(
        self, settings: Settings, *, share: BudgetShare, bars: BarSnapshot | None = None
    ) -> None:
        self._settings = settings
        self._share = share
        self._bars = bars
        self._engine: AsyncEngine | None = None
        self._limiter: AsyncLimiter | None = None

    def __call__(self, account_id: str) -> Broker:
        if self._settings.broker is BrokerKind.ALPACA:
            if self._limiter is None:
                self._limiter = RequestBudget.from_settings(self._settings, self._share).limiter()
            return broker_for(self._settings, account_id, share=self._share, limiter=self._limiter)
        if self._bars is None:
            self._bars = bar_store_snapshot(self._settings)
        if self._engine is None:
            self._engine = create_store_engine(
                self._settings.resolved_database_url, pool_size=SHARED_POOL_SIZE
            )
        return SimulatedBroker(
            self._settings.resolved_database_url,
            account_id,
            self._settings,
            self._bars,
            engine=self._engine,
        )

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()
