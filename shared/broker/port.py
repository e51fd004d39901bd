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

    async def get_account(self) -> Account:
        """Cash, buying power, equity, and the day-trading figures (day-trading buying power,
        the pattern-day-trader flag, the day-trade count)."""
        ...

    async def get_positions(self) -> list[Position]: ...

    async def get_position(self, symbol: str) -> Position | None: ...

    async def get_open_orders(self) -> list[Order]: ...

    async def get_asset(self, symbol: str) -> Asset | None:
        """Tradable/fractionable metadata; None when the broker does not know the symbol."""
        ...

    async def submit_order(self, request: OrderRequest) -> Order:
        """Place a DAY order. Idempotent per `client_order_id`: a retried or repeated submission
        returns the order already placed under that id and never places a second one.

        Refused, as at Alpaca, under the order-acceptance rules of `shared.broker.order_rules`
        (each raises a `BrokerError` naming its rule). Outside the session the order is accepted
        but queued (`accepted`): it cannot fill before the next session opens.

        A `TransientBrokerError` (retries used up, and the order not found by its id afterwards)
        still leaves the outcome unknown — the broker may yet show it — so reconcile by client
        order id before placing anything else for it."""
        ...

    async def cancel_order(self, order_id: str) -> CancelResult:
        """Ask to cancel. An order that already ended is not an error: the result says
        ALREADY_TERMINAL with its state (`filled`, `canceled`, ...). An unknown id raises
        `NotFoundError`. A REQUESTED cancel is asynchronous, as at Alpaca: the order may read
        `pending_cancel` (still open) before it ends `canceled` — or `filled`, when a fill wins
        the race."""
        ...

    async def get_order(self, order_id: str) -> Order | None: ...

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None: ...

    async def get_orders(self, symbol: str, after: dt.datetime) -> list[Order]:
        """Every order of `symbol` submitted after `after`, whatever its status, newest first
        (at most 500). Finds an order that carries no client order id of ours, such as the one
        `close_position` creates."""
        ...

    async def close_position(self, symbol: str) -> Order | None:
        """Sell the exact quantity held, fractional or not (even of an asset that is not
        fractionable today), at market as a DAY order: Alpaca's close-position call. Returns the
        order it created, whose client order id is the broker's, not ours; None when nothing is
        held. Refused like any order while shares are held by open orders or an opposite order
        is open; outside the session the order is queued (`accepted`) for the next open."""
        ...

    async def close_all_positions(self) -> list[PositionClose]:
        """Cancel every open order, then close every position; one entry per position."""
        ...

    async def get_latest_quote(self, symbol: str) -> Quote | None:
        """The latest top-of-book quote (source `rest`); None when the broker has none."""
        ...

    async def get_latest_trade(self, symbol: str) -> Trade | None: ...

    async def get_clock(self) -> MarketClock:
        """Whether the session is open now, and the next open and close (an early close is the
        next close on its day)."""
        ...

    async def get_calendar(self, start: dt.date, end: dt.date) -> list[TradingSession]:
        """The sessions between the dates, each with its own open and close: holidays are
        absent and early closes end at 13:00 New York."""
        ...
