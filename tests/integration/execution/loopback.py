"""The execution service (its consumer and timer loop) with the Alpaca adapter against a loopback
Alpaca server, on a SQLite store, on the loopback's clock: the shell the loopback execution tests
drive."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from services.execution import timer_loop
from services.execution.executor import Executor
from shared.broker.alpaca import AlpacaBroker
from shared.broker.port import Broker
from shared.bus.memory import InMemoryBus
from shared.events import Event
from shared.eventstore.store import SqlEventStore
from shared.messaging.consumer import Consumer
from shared.service.runtime import PeriodicRunner
from tests.eventually import eventually
from tests.fakes.alpaca import AlpacaLoopback
from tests.integration.execution.world import fast_settings


class Execution:
    """The execution service's consumer and timer loop with the Alpaca adapter."""

    def __init__(
        self, database: str, tmp_path: Path, loopback: AlpacaLoopback, **overrides: Any
    ) -> None:
        self.settings = fast_settings(
            database, tmp_path, broker="alpaca", **{"broker_retries": 5, **overrides}
        )
        self.store = SqlEventStore(database)

        async def no_sleep(delay_s: float) -> None:
            return None

        def alpaca(account_id: str) -> Broker:
            return AlpacaBroker(
                key_id=SecretStr(loopback.world.key_id),
                secret_key=SecretStr(loopback.world.secret_key),
                sleep=no_sleep,
                timeout_s=0.5,
                base_url_override=loopback.base_url,
            )

        self.executor = Executor(self.settings, alpaca, clock=loopback.world.clock)
        self.consumer = Consumer(
            "execution", self.store, InMemoryBus(), self.executor.handle, ["RebalancePlanned"]
        )

    async def run_timers(self) -> None:
        await PeriodicRunner("execution", self.store).run_once(
            timer_loop.due_timers(self.executor, self.settings.timer_poll_s)
        )

    async def timers_until(self, workflow_id: str, event_type: str) -> None:
        async def reached() -> bool:
            await self.run_timers()
            return event_type in await self.types(workflow_id)

        await eventually(reached, timeout_s=30, message=f"{event_type} not recorded")

    async def timers_while(self, condition: Callable[[], Awaitable[bool]], message: str) -> None:
        """Run due timers until `condition` holds."""

        async def reached() -> bool:
            await self.run_timers()
            return await condition()

        await eventually(reached, timeout_s=30, message=message)

    async def events(self, workflow_id: str) -> list[Event]:
        return [r.event for r in await self.store.read_correlation(workflow_id)]

    async def types(self, workflow_id: str) -> list[str]:
        return [event.event_type for event in await self.events(workflow_id)]

    async def close(self) -> None:
        await self.executor.close()
        await self.store.close()


def client_order_ids(loopback: AlpacaLoopback) -> list[str]:
    with loopback.world.lock:
        return [order.client_order_id for order in loopback.world.orders.values()]
