"""The `Broker` port: the one interface portfolio and execution use to reach a broker.

A `Broker` instance is bound to one account (`account_id`); a deployment that trades many
accounts holds one instance per account. Every adapter — Alpaca, the simulated world — passes the
contract suite in `tests/integration/broker/contract.py`.

Failures raise `shared.broker.errors.BrokerError` subclasses. Absence is not a failure: an unknown
order, position, asset or a missing quote is `None`.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from shared.broker.models import (
    Account,
    Asset,
    CancelResult,
    MarketClock,
    Order,
    OrderRequest,
    Position,
    PositionClose,
    Trade,
    TradingSession,
)
from shared.trading import Quote


class Broker(Protocol):
    @property
    def account_id(self) -> str: ...

    async def get_account(self) -> Account: ...

    async def get_positions(self) -> list[Position]: ...

    async def get_position(self, symbol: str) -> Position | None: ...

    async def get_open_orders(self) -> list[Order]: ...

    async def get_asset(self, symbol: str) -> Asset | None:
        """Tradable/fractionable metadata; None when the broker does not know the symbol."""
        ...

    async def submit_order(self, request: OrderRequest) -> Order:
        """Place a DAY order. Idempotent per `client_order_id`: a retried or repeated submission
        returns the order already placed under that id and never places a second one.

        A `TransientBrokerError` (retries used up, and the order not found by its id afterwards)
        still leaves the outcome unknown — the broker may yet show it — so reconcile by client
        order id before placing anything else for it."""
        ...

    async def cancel_order(self, order_id: str) -> CancelResult:
        """Ask to cancel. An order that already ended is not an error: the result says
        ALREADY_TERMINAL with its state (`filled`, `canceled`, ...). An unknown id raises
        `NotFoundError`."""
        ...

    async def get_order(self, order_id: str) -> Order | None: ...

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None: ...

    async def close_all_positions(self) -> list[PositionClose]:
        """Cancel every open order, then close every position; one entry per position."""
        ...

    async def get_latest_quote(self, symbol: str) -> Quote | None:
        """The latest top-of-book quote (source `rest`); None when the broker has none."""
        ...

    async def get_latest_trade(self, symbol: str) -> Trade | None: ...

    async def get_clock(self) -> MarketClock: ...

    async def get_calendar(self, start: dt.date, end: dt.date) -> list[TradingSession]: ...
