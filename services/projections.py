"""The trade ledger (docs/trading-rules.md, Trade ledger): read models folded from the event store —
one entry per filled order with its real fill and the strategies it is attributed to, net positions
per account from those fills, and traded dollars per strategy.

A projection is only a fold: `rebuild` reads every event from the first position; a maintained
copy applies new events as they come and checkpoints itself as JSON with the last position it
applied. Both must always agree.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared.events.orders import OrderFilled
from shared.events.signals import SignalGenerated

if TYPE_CHECKING:
    # Annotations only: the event store loads SQLAlchemy and Alembic, which a report never needs.
    from shared.eventstore.port import EventStoreReader
    from shared.eventstore.records import RecordedEvent

UNATTRIBUTED = "(unattributed)"
"""Trades of symbols no strategy targeted: liquidations of former holdings."""
PAGE_SIZE = 1000


@dataclass(frozen=True)
class FillEntry:
    client_order_id: str
    broker_order_id: str | None
    workflow_id: str
    account_id: str
    symbol: str
    side: str
    filled_qty: Decimal
    fill_price: Decimal
    filled_at: str
    strategy_shares: dict[str, Decimal]

    @property
    def signed_qty(self) -> Decimal:
        return self.filled_qty if self.side == "BUY" else -self.filled_qty


@dataclass
class TradeLedger:
    last_position: int = 0
    fills: dict[str, FillEntry] = field(default_factory=dict)
    attribution: dict[str, dict[str, dict[str, Decimal]]] = field(default_factory=dict)
    """workflow id → symbol → strategy → its share of the symbol's target weight."""

    def apply(self, recorded: RecordedEvent) -> None:
        if recorded.position <= self.last_position:
            return  # already folded in: applying is idempotent
        event = recorded.event
        if isinstance(event, SignalGenerated):
            self.attribution[event.correlation_id] = _shares(contributions(event))
        elif isinstance(event, OrderFilled):
            # filled_qty is the broker order's cumulative fill: the latest report wins
            self.fills[event.client_order_id] = FillEntry(
                client_order_id=event.client_order_id,
                broker_order_id=event.broker_order_id,
                workflow_id=event.correlation_id,
                account_id=event.account_id,
                symbol=event.symbol,
                side=event.side,
                filled_qty=event.filled_qty,
                fill_price=event.avg_fill_price,
                filled_at=event.occurred_at.isoformat(),
                strategy_shares=self.attribution.get(event.correlation_id, {}).get(
                    event.symbol, {UNATTRIBUTED: Decimal(1)}
                ),
            )
        self.last_position = recorded.position

    def positions(self) -> dict[str, dict[str, Decimal]]:
        """Net quantity per account and symbol from this system's fills."""
        held: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for entry in self.fills.values():
            held[entry.account_id][entry.symbol] += entry.signed_qty
        return {account: dict(symbols) for account, symbols in held.items()}

    def traded_by_strategy(self) -> dict[str, Decimal]:
        """Signed dollars traded (buys positive) attributed to each strategy."""
        traded: dict[str, Decimal] = defaultdict(Decimal)
        for entry in self.fills.values():
            notional = entry.signed_qty * entry.fill_price
            for strategy, share in entry.strategy_shares.items():
                traded[strategy] += notional * share
        return dict(traded)

    def to_document(self) -> str:
        return json.dumps(
            {
                "last_position": self.last_position,
                "fills": [asdict(entry) for entry in self.fills.values()],
                "attribution": self.attribution,
            },
            default=str,
            sort_keys=True,
        )

    @classmethod
    def from_document(cls, document: str) -> TradeLedger:
        data: dict[str, Any] = json.loads(document)
        fills = {}
        for raw in data["fills"]:
            raw["filled_qty"] = Decimal(raw["filled_qty"])
            raw["fill_price"] = Decimal(raw["fill_price"])
            raw["strategy_shares"] = {k: Decimal(v) for k, v in raw["strategy_shares"].items()}
            fills[raw["client_order_id"]] = FillEntry(**raw)
        attribution = {
            workflow: {
                symbol: {strategy: Decimal(share) for strategy, share in shares.items()}
                for symbol, shares in symbols.items()
            }
            for workflow, symbols in data["attribution"].items()
        }
        return cls(data["last_position"], fills, attribution)

    async def catch_up(self, store: EventStoreReader) -> None:
        async for page in store.replay(self.last_position, PAGE_SIZE):
            for recorded in page:
                self.apply(recorded)

    @classmethod
    async def rebuild(cls, store: EventStoreReader) -> TradeLedger:
        ledger = cls()
        await ledger.catch_up(store)
        return ledger


def contributions(signal: SignalGenerated) -> dict[str, dict[str, Decimal]]:
    """strategy → symbol → its contribution a_f·A_f(s) to the consolidated target weight."""
    return {
        strategy.strategy: {
            symbol: strategy.weight * weight for symbol, weight in strategy.allocation.items()
        }
        for strategy in signal.strategies
    }


def _shares(target: dict[str, dict[str, Decimal]]) -> dict[str, dict[str, Decimal]]:
    """Each strategy's share of each target symbol: a_f·A_f(s) / Σ_f a_f·A_f(s)."""
    by_symbol: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for strategy, weights in target.items():
        for symbol, weight in weights.items():
            by_symbol[symbol][strategy] = weight
    shares = {}
    for symbol, by_strategy in by_symbol.items():
        total = sum(by_strategy.values(), Decimal(0))
        if total > 0:
            shares[symbol] = {name: value / total for name, value in by_strategy.items()}
    return shares
