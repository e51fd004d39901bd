"""One broker per account for the life of a service process, created on first use (the
simulated broker loads the bar store, so not on every event) and closed with the service."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from shared.broker.port import Broker


class BrokerAccounts:
    def __init__(self, factory: Callable[[str], Broker]) -> None:
        """`factory` makes an account's broker: a `shared.broker.factory.BrokerFactory` in the
        services."""
        self._factory = factory
        self._brokers: dict[str, Broker] = {}
        self._lock = asyncio.Lock()

    async def get(self, account_id: str) -> Broker:
        async with self._lock:
            broker = self._brokers.get(account_id)
            if broker is None:
                broker = await asyncio.to_thread(self._factory, account_id)
                self._brokers[account_id] = broker
            return broker

    async def close(self) -> None:
        brokers, self._brokers = list(self._brokers.values()), {}
        for broker in brokers:
            close = getattr(broker, "close", None)
            if close is not None:
                await close()
