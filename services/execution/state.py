"""What execution remembers between steps (docs/trading-rules.md, Execution state machine):
one document per workflow holding the workflow's phase and every order chain.

Frozen dataclasses, changed with `dataclasses.replace`; `to_document`/`from_document` are the
JSON round trip through pydantic (Decimals as strings, timestamps as ISO-8601), so the document
saved beside the events reads back to an equal value.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import TypeAdapter

from shared.trading import Quote, Side

AttemptKind = Literal["limit", "repeg", "market"]
RequestReason = Literal["initial", "repeg", "escalation", "fallback", "residual"]
CancelPurpose = Literal["repeg", "escalation", "leftover", "close"]


class WorkflowPhase(StrEnum):
    CANCELLING_STALE = "cancelling_stale"
    SELLING = "selling"
    SETTLING = "settling"
    BUYING = "buying"
    DONE = "done"


class ChainState(StrEnum):
    PRICING = "pricing"
    """Waiting for a quote, or for buying power before a market BUY."""
    REQUESTED = "requested"
    """The intent is recorded; the broker has not confirmed it yet."""
    WORKING = "working"
    CANCELLING = "cancelling"
    FILLED = "filled"
    SKIPPED = "skipped"
    FAILED = "failed"
    PREVIEWED = "previewed"
    """A dry run's chain that reached its first intent: it ends there, holding the order it
    would have sent (docs/trading-rules.md, Dry runs)."""


ENDED = frozenset({ChainState.FILLED, ChainState.SKIPPED, ChainState.FAILED, ChainState.PREVIEWED})


@dataclass(frozen=True)
class AttemptRecord:
    """One broker order of a chain, for `TradeExecuted.orders[].attempts`."""

    kind: AttemptKind
    client_order_id: str
    limit_price: Decimal | None
    broker_order_id: str | None
    status: str


@dataclass(frozen=True)
class OrderIntent:
    """The chain's current order: recorded as `OrderRequested` before the broker sees it."""

    client_order_id: str
    attempt: int
    kind: AttemptKind
    qty: Decimal
    limit_price: Decimal | None
    reason: RequestReason
    requested_event_id: str
    broker_order_id: str | None = None
    placed_at: datetime | None = None
    submit_tries: int = 0
    closes_position: bool = False
    """Sent as the broker's close-position call (a market sell of exactly what is held), which
    takes no client order id: it is found again by listing the symbol's orders since
    `requested_at` (docs/trading-rules.md, Exact exits)."""
    requested_at: datetime | None = None
    filled_qty: Decimal = Decimal(0)
    """What the broker reported filled on this order so far."""
    filled_avg_price: Decimal | None = None


@dataclass(frozen=True)
class Chain:
    """One plan item's orders (docs/trading-rules.md, Order chains): the current one and what the
    ended ones filled."""

    key: str
    symbol: str
    side: Side
    trade_amount: Decimal
    liquidation: bool
    state: ChainState = ChainState.PRICING
    requested_qty: Decimal = Decimal(0)
    fractionable: bool = False
    asset_known: bool = False
    order: OrderIntent | None = None
    closed_filled_qty: Decimal = Decimal(0)
    """Σ filled of the chain's ended orders; the current order's fill comes on top."""
    closed_filled_value: Decimal = Decimal(0)
    anchor: Decimal | None = None
    price_history: tuple[Decimal, ...] = ()
    checks: int = 0
    """Re-peg checks made; one that came to nothing counts too, so every chain reaches its
    market order after a bounded number of checks (docs/trading-rules.md, Supervision)."""
    quote_attempts: int = 0
    bp_checks: int = 0
    pricing_started_at: datetime | None = None
    cancel_purpose: CancelPurpose | None = None
    cancel_deadline: datetime | None = None
    qty_retry_used: bool = False
    whole_shares_retry_used: bool = False
    """A fractional quantity the broker refused as not fractionable was asked again as whole
    shares, once."""
    quote: Quote | None = None
    """The quote the chain's orders were priced from, as `OrderRequested.quote` reports it."""
    requoted: bool = False
    """The first quote priced no limit above $0 and was asked for once more."""
    trade_price: Decimal | None = None
    """The last trade's price, when the chain is priced from it after two bad quotes."""
    attempts: tuple[AttemptRecord, ...] = ()
    error_message: str | None = None
    unplaced: str | None = None
    """Why what was left of the item was never sent (the close guard), when that ended it."""
    ended_at: datetime | None = None

    @property
    def filled_qty(self) -> Decimal:
        current = self.order.filled_qty if self.order is not None else Decimal(0)
        return self.closed_filled_qty + current

    @property
    def filled_value(self) -> Decimal:
        order = self.order
        current = (
            order.filled_qty * order.filled_avg_price
            if order is not None and order.filled_avg_price is not None
            else Decimal(0)
        )
        return self.closed_filled_value + current

    @property
    def avg_fill_price(self) -> Decimal | None:
        filled = self.filled_qty
        return (self.filled_value / filled).quantize(Decimal("0.000001")) if filled > 0 else None

    @property
    def ended(self) -> bool:
        return self.state in ENDED


@dataclass(frozen=True)
class OpenOrderSeen:
    """An order open at the broker when execution started, own or foreign
    (docs/trading-rules.md, Stale orders)."""

    broker_order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    qty: Decimal
    filled_qty: Decimal
    status: str
    own: bool


@dataclass(frozen=True)
class PlanLine:
    symbol: str
    action: Literal["BUY", "SELL", "HOLD"]
    trade_amount: Decimal
    target_weight: Decimal


@dataclass(frozen=True)
class WorkflowExecution:
    workflow_id: str
    account_id: str
    plan_id: str
    plan_event_id: str
    phase: WorkflowPhase
    lines: tuple[PlanLine, ...]
    started_at: datetime
    stale_cancelled: tuple[OpenOrderSeen, ...] = ()
    foreign_open_orders: tuple[OpenOrderSeen, ...] = ()
    stale_deadline: datetime | None = None
    chains: tuple[Chain, ...] = ()
    released: Decimal = Decimal(0)
    settle_checks: int = 0
    session_close: datetime | None = None
    """The close of the session the run trades in, on execution's clock; None when the session
    was closed at the start (a forced paper run), so no close guard applies."""
    preview: bool = False
    """A dry run: each chain ends where it would record its first intent, and nothing is sent,
    cancelled or closed at the broker (docs/trading-rules.md, Dry runs)."""

    def chain(self, key: str) -> Chain | None:
        return next((chain for chain in self.chains if chain.key == key), None)

    def with_chain(self, updated: Chain) -> WorkflowExecution:
        return replace(
            self,
            chains=tuple(updated if chain.key == updated.key else chain for chain in self.chains),
        )

    def phase_chains(self, side: Side) -> tuple[Chain, ...]:
        return tuple(chain for chain in self.chains if chain.side == side)


_ADAPTER: TypeAdapter[WorkflowExecution] = TypeAdapter(WorkflowExecution)


def to_document(state: WorkflowExecution) -> dict[str, Any]:
    document: dict[str, Any] = _ADAPTER.dump_python(state, mode="json")
    return document


def from_document(document: dict[str, Any]) -> WorkflowExecution:
    return _ADAPTER.validate_python(_with_quote_symbols(document))


def _with_quote_symbols(document: dict[str, Any]) -> dict[str, Any]:
    """Documents saved before a chain's quote carried its symbol get the chain's symbol, so a
    workflow in flight across an upgrade reads back."""
    chains = [
        {**chain, "quote": {"symbol": chain["symbol"], **chain["quote"]}}
        if chain.get("quote") is not None and "symbol" not in chain["quote"]
        else chain
        for chain in document.get("chains", ())
    ]
    return {**document, "chains": chains}
