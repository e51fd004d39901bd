"""Asset metadata (tradable, fractionable) kept for `ALCHEMISER_ASSET_CACHE_S`
(docs/trading-rules.md, Sizing), so a 100-symbol phase asks the broker once per symbol rather than
once per step."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from services.execution.sizing import AssetInfo
from shared.broker.errors import BrokerError
from shared.broker.port import Broker


class AssetCache:
    """One account's asset metadata. A failed lookup is not cached: the next step asks again,
    and meanwhile the asset counts as unknown: whole shares, no further checks
    (docs/trading-rules.md, Pre-flight checks)."""

    def __init__(
        self, ttl_s: float, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[datetime, AssetInfo | None]] = {}

    async def get(self, broker: Broker, symbol: str) -> AssetInfo | None:
        now = self._clock()
        entry = self._entries.get(symbol)
        if entry is not None and (now - entry[0]).total_seconds() < self._ttl_s:
            return entry[1]
        try:
            asset = await broker.get_asset(symbol)
        except BrokerError:
            return None
        info = None if asset is None else AssetInfo(asset.tradable, asset.fractionable)
        self._entries[symbol] = (now, info)
        return info
