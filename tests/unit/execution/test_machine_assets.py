"""Asset metadata is asked once per symbol for ALCHEMISER_ASSET_CACHE_S
(docs/trading-rules.md, Sizing)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from services.execution.assets import AssetCache
from services.execution.sizing import AssetInfo
from shared.broker.errors import TransientBrokerError
from shared.broker.models import Asset
from tests.unit.execution.broker_fake import FakeBroker
from tests.unit.execution.machine_run import T0


class CountingBroker(FakeBroker):
    asks: int = 0
    fail: bool = False

    async def get_asset(self, symbol: str) -> Asset | None:
        self.asks += 1
        if self.fail:
            raise TransientBrokerError("asset lookup timed out", code="timeout")
        return await super().get_asset(symbol)


async def test_asset_is_asked_once_within_the_cache_time_and_again_after() -> None:
    now = [T0]
    broker = CountingBroker(quotes={"AAA": (Decimal(1), Decimal(2))}, non_fractionable={"AAA"})
    cache = AssetCache(300, clock=lambda: now[0])

    first = await cache.get(broker, "AAA")
    now[0] = T0 + timedelta(seconds=299)
    second = await cache.get(broker, "AAA")
    now[0] = T0 + timedelta(seconds=300)
    await cache.get(broker, "AAA")

    assert first == second == AssetInfo(tradable=True, fractionable=False)
    assert broker.asks == 2


async def test_failed_lookup_is_unknown_and_not_cached() -> None:
    broker = CountingBroker(quotes={"AAA": (Decimal(1), Decimal(2))})
    cache = AssetCache(300, clock=lambda: T0)
    broker.fail = True

    assert await cache.get(broker, "AAA") is None
    broker.fail = False
    assert await cache.get(broker, "AAA") == AssetInfo(tradable=True, fractionable=True)
    assert broker.asks == 2
