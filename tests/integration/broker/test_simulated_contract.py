"""The broker contract on the simulated broker, on SQLite and on the real PostgreSQL (each
database migrated with the event store's Alembic chain, which creates the broker's tables)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.broker.simulated import Scenario, SimulatedBroker
from shared.eventstore.migrations import upgrade
from tests.fakes.clock import ControlledClock
from tests.integration.broker.contract import START, BrokerContract
from tests.integration.broker.simulated_world import SimulatedWorld, migrated_sqlite, new_broker

ACCOUNT_ID = "contract"


class SimulatedContract(BrokerContract):
    @pytest.fixture
    def scenario(self) -> Scenario:
        return Scenario()

    @pytest.fixture
    def clock(self) -> ControlledClock:
        return ControlledClock(START)

    @pytest.fixture
    def world(
        self, database_url: str, scenario: Scenario, clock: ControlledClock
    ) -> SimulatedWorld:
        return SimulatedWorld(database_url, ACCOUNT_ID, scenario, clock)

    @pytest.fixture
    async def broker(
        self, database_url: str, scenario: Scenario, clock: ControlledClock
    ) -> AsyncIterator[SimulatedBroker]:
        broker = new_broker(database_url, ACCOUNT_ID, scenario=scenario, clock=clock)
        try:
            yield broker
        finally:
            await broker.close()


class TestSimulatedBrokerContractOnSqlite(SimulatedContract):
    @pytest.fixture
    async def database_url(self, tmp_path: Path) -> str:
        return await migrated_sqlite(tmp_path)


@pytest.mark.integration
class TestSimulatedBrokerContractOnPostgres(SimulatedContract):
    @pytest.fixture
    async def database_url(self, postgres_url: str) -> str:
        await upgrade(postgres_url)
        return postgres_url
