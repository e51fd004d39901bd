"""`SimulatedBroker`: the `Broker` port over the simulated world
(docs/trading-rules.md, Simulated orders / Simulated state).

It refuses orders by Alpaca's own rule table (`shared.broker.order_rules`), queues orders placed
outside the session, and can leave a cancel pending, so the embedded default behaves as Alpaca
does where an order's fate depends on it.

Always paper, deterministic, any number of accounts (one instance per account, all on the same
tables). State lives in the database and every call commits in the broker's own transaction on
its own engine, never inside a service's, so a crash between a broker call and a service's
commit leaves the same windows a real broker does. Each transaction first locks the account's
row (`SELECT … FOR UPDATE` on PostgreSQL; SQLite writers are serialised by `BEGIN IMMEDIATE`),
so two fills on one account never lose an update; the same statement reads what the call needs
first, and the call's changes are written together before the commit (`book.Book`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import market_clock
from shared.broker import order_rules
from shared.broker.errors import (
    BrokerError,
    DuplicateClientOrderIdError,
    InsufficientBuyingPowerError,
    InsufficientQtyAvailableError,
    InvalidOrderError,
    NotFoundError,
    RateLimitedError,
    TransientBrokerError,
)
from shared.broker.models import (
    Account,
    Asset,
    CancelOutcome,
    CancelResult,
    MarketClock,
    Order,
    OrderRequest,
    OrderType,
    Position,
    PositionClose,
    Trade,
    TradingSession,
)
from shared.broker.simulated import fills, ledger
from shared.broker.simulated.book import PLACED, Book, Opening
from shared.broker.simulated.ledger import StoredOrder, StoredPosition
from shared.broker.simulated.quotes import QUOTE_SIZE, derived_quote, last_price, shaped_quote
from shared.broker.simulated.scenario import (
    CancelEnd,
    Scenario,
    SlowCancel,
    SubmissionFault,
    SymbolFill,
)
from shared.broker.simulated.tables import side_of, sim_accounts, sim_positions, stored_side
from shared.eventstore.engine import WRITE_OPTION, create_store_engine, single_read
from shared.marketdata.bars import BarSnapshot
from shared.settings import FillModel, Settings
from shared.trading import Quote, Side, flat_quote

POOL_SIZE = 2
ACCOUNT_STATUS = "ACTIVE"
BUYING_POWER_CODE = "40310000"
INVALID_ORDER_CODE = "42210000"


class SimulatedWorldSettings(Protocol):
    """The `ALCHEMISER_SIM_*` settings the broker reads (`shared.settings.Settings` has them)."""

    @property
    def sim_now(self) -> str | None: ...

    @property
    def sim_starting_cash(self) -> Decimal: ...

    @property
    def sim_spread_bps(self) -> Decimal: ...

    @property
    def sim_fill_model(self) -> FillModel: ...

    @property
    def sim_latency_ms(self) -> int: ...

    @property
    def sim_reject_rate(self) -> Decimal: ...

    @property
    def sim_partial_fraction(self) -> Decimal: ...

    @property
    def broker_retries(self) -> int: ...


def _plain(value: Decimal) -> str:
    """A quantity as people write it: 10, 2.5 (never 1E+1)."""
    return format(value.normalize(), "f")


class SimulatedBroker:
    """One simulated account. `clock` (default: the standing simulated now) and `sleep` (the
    latency wait) can be replaced so tests move time and never really wait; `scenario` is the
    test's handle on assets, quotes, fills and faults."""

    def __init__(
        self,
        database_url: str,
        account_id: str,
        settings: SimulatedWorldSettings,
        bars: BarSnapshot,
        *,
        scenario: Scenario | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        engine: AsyncEngine | None = None,
    ) -> None:
        """`engine`: a database engine shared by the brokers of many accounts (see
        `shared.broker.factory.BrokerFactory`); closing the broker then leaves it to its owner."""
        self._account_id = account_id
        self._settings = settings
        self._bars = bars
        self.scenario = scenario if scenario is not None else Scenario()
        self._clock: Callable[[], dt.datetime] = clock or _standing_clock(settings, bars)
        self._sleep = sleep
        self._owns_engine = engine is None
        self._engine: AsyncEngine = (
            engine or create_store_engine(database_url, pool_size=POOL_SIZE)
        ).execution_options(**{WRITE_OPTION: True})
        self._at_close = settings.sim_fill_model is FillModel.CLOSE
        """The `close` fill model: prices, fills and positions at the session's close, exact."""
        self._touch = settings.sim_fill_model is FillModel.TOUCH
        self._last_prices: dict[tuple[str, dt.date], Decimal | None] = {}
        self._unsettled: list[tuple[Decimal, int]] = []
        """Sell proceeds not yet in buying power, with the account reads they still wait."""
        self._cancels_asked: dict[str, tuple[dt.datetime, SlowCancel]] = {}
        """Orders left `pending_cancel`: when the cancel was asked and how it ends. Like the
        scenario, not stored: another instance ends such an order `canceled` when it reads it."""

    @classmethod
    def from_settings(
        cls, settings: Settings, account_id: str, bars: BarSnapshot, **overrides: Any
    ) -> SimulatedBroker:
        """The broker of `account_id` on the installation's database
        (`ALCHEMISER_DATABASE_URL`, or the default SQLite file under the data directory)."""
        return cls(settings.resolved_database_url, account_id, settings, bars, **overrides)

    def __repr__(self) -> str:
        return f"SimulatedBroker(account_id={self._account_id!r}, mode=paper)"

    @property
    def account_id(self) -> str:
        return self._account_id

    async def close(self) -> None:
        """Release the broker's own database connections (a shared engine stays open)."""
        if self._owns_engine:
            await self._engine.dispose()

    async def open_account(
        self, cash: Decimal, positions: Mapping[str, tuple[Decimal, Decimal]]
    ) -> None:
        """Open this (unused) account with `cash` and `positions` (symbol → (qty, price)) instead
        of the starting cash: a replay re-drives a recorded day from the account it saw."""
        now = self._now()
        async with self._engine.begin() as connection:
            existing = await connection.execute(
                sa.select(sim_accounts.c.account_id).where(
                    sim_accounts.c.account_id == self._account_id
                )
            )
            if existing.first() is not None:
                raise ValueError(
                    f"simulated account {self._account_id!r} exists already; "
                    "open_account only opens a new one"
                )
            await connection.execute(
                sa.insert(sim_accounts).values(
                    account_id=self._account_id, cash=cash, created_at=now
                )
            )
            for symbol, (qty, price) in sorted(positions.items()):
                await connection.execute(
                    sa.insert(sim_positions).values(
                        account_id=self._account_id,
                        symbol=_symbol(symbol),
                        qty=qty,
                        avg_entry_price=price,
                        last_price=price,
                        updated_at=now,
                    )
                )

    # ------------------------------------------------------------------ account and positions

    async def get_account(self) -> Account:
        await self._wait()
        async with self._locked_account(Opening.POSITIONS) as book:
            await self._mark_positions(book)
            state = await self._state(book)
        buying_power = state.buying_power - self._unsettled_proceeds()
        self._unsettled = [(amount, reads - 1) for amount, reads in self._unsettled if reads > 1]
        standing = self.scenario.day_trading
        return Account(
            account_id=self._account_id,
            cash=state.cash,
            buying_power=buying_power,
            equity=state.equity,
            portfolio_value=state.equity,
            status=ACCOUNT_STATUS,
            daytrading_buying_power=(
                buying_power
                if standing.daytrading_buying_power is None
                else standing.daytrading_buying_power
            ),
            pattern_day_trader=standing.pattern_day_trader,
            daytrade_count=standing.daytrade_count,
        )

    async def get_positions(self) -> list[Position]:
        await self._wait()
        async with self._locked_account(Opening.POSITIONS) as book:
            await self._mark_positions(book)
            working = await book.working()
            return [self._position(row, working) for row in await book.positions()]

    async def get_position(self, symbol: str) -> Position | None:
        await self._wait()
        async with self._locked_account(Opening.POSITIONS) as book:
            await self._mark_positions(book)
            row = await book.position(_symbol(symbol))
            return None if row is None else self._position(row, await book.working())

    async def get_asset(self, symbol: str) -> Asset | None:
        await self._wait()
        symbol = _symbol(symbol)
        if not self._knows(symbol):
            return None
        return Asset(
            symbol=symbol,
            tradable=symbol not in self.scenario.non_tradable,
            fractionable=symbol not in self.scenario.non_fractionable,
            name=symbol,
            exchange="SIMULATED",
        )

    # ------------------------------------------------------------------ orders

    async def get_open_orders(self) -> list[Order]:
        await self._wait()
        async with self._locked_account(Opening.WORKING) as book:
            rows = await book.working()
            orders = [await self._advance(book, row, poll=False) for row in rows]
        return [order for order in orders if not order.is_terminal]

    async def submit_order(self, request: OrderRequest) -> Order:
        """Submit, retrying an injected 429, 5xx or lost answer up to `ALCHEMISER_BROKER_RETRIES`
        times as the Alpaca adapter does; a retry finds an order already placed by its client
        order id, so it never places a second one."""
        await self._wait()
        attempt = 0
        while True:
            try:
                return await self._submit_once(request)
            except BrokerError as error:
                if not error.retryable or attempt >= self._settings.broker_retries:
                    raise
                attempt += 1
                await self._sleep(float(2 ** (attempt - 1)))

    async def _submit_once(self, request: OrderRequest) -> Order:
        operation = f"submit order {request.client_order_id}"
        fault = self.scenario.next_fault()
        if fault is SubmissionFault.RATE_LIMITED:
            raise RateLimitedError(
                f"{operation}: the simulated broker answered 429 (injected); retried",
                retry_after_s=None,
            )
        if fault is SubmissionFault.TRANSIENT:
            raise TransientBrokerError(
                f"{operation}: the simulated broker answered 503 (injected); retried",
                http_status=503,
            )
        async with self._locked_account(
            Opening.WORKING_AND_CLIENT_ORDER_ID, request.client_order_id
        ) as book:
            existing = await book.by_client_order_id(request.client_order_id)
            if existing is not None:
                return _matching(_order(existing), request)
            order = await self._place(
                book,
                client_order_id=request.client_order_id,
                symbol=_symbol(request.symbol),
                side=request.side,
                order_type=request.order_type,
                qty=request.qty,
                limit_price=request.limit_price,
            )
        if fault is SubmissionFault.RESPONSE_LOST:
            raise TransientBrokerError(
                f"{operation}: the simulated broker's answer was lost (injected timeout); "
                "look the order up by its client order id",
                code="timeout",
            )
        return order

    async def cancel_order(self, order_id: str) -> CancelResult:
        await self._wait()
        async with self._locked_account(Opening.ORDER_ID, order_id) as book:
            row = await book.by_order_id(order_id)
            if row is None:
                raise NotFoundError(
                    f"cancel order {order_id}: no such order in account {self._account_id}; "
                    "look it up by its client order id",
                    http_status=404,
                )
            if (
                row.status in ledger.WORKING_STATUSES
                and self.scenario.fills.get(row.symbol) is SymbolFill.ON_CANCEL
            ):
                row = await self._fill_remaining_now(book, row)
            if row.status not in ledger.WORKING_STATUSES:
                return CancelResult(
                    order_id=order_id,
                    outcome=CancelOutcome.ALREADY_TERMINAL,
                    terminal_state=row.status,
                )
            slow = self.scenario.cancels.get(row.symbol)
            if slow is None:
                self._set_status(book, row, "canceled")
            elif row.status != "pending_cancel":
                self._cancels_asked[order_id] = (self._now(), slow)
                self._set_status(book, row, "pending_cancel")
        return CancelResult(order_id=order_id, outcome=CancelOutcome.REQUESTED)

    async def get_order(self, order_id: str) -> Order | None:
        await self._wait()
        async with self._locked_account(Opening.ORDER_ID, order_id) as book:
            row = await book.by_order_id(order_id)
            return None if row is None else await self._advance(book, row, poll=True)

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        """An order never placed is answered by one read without the account's lock: execution
        looks each order up before submitting it, and nearly always finds none, with nothing to
        advance (docs/performance.md, Statements per workflow)."""
        await self._wait()
        async with single_read(self._engine) as connection:
            placed = await connection.execute(
                PLACED, {"b_account_id": self._account_id, "b_client_order_id": client_order_id}
            )
            if placed.first() is None:
                return None
        async with self._locked_account(Opening.CLIENT_ORDER_ID, client_order_id) as book:
            row = await book.by_client_order_id(client_order_id)
            return None if row is None else await self._advance(book, row, poll=True)

    async def get_orders(self, symbol: str, after: dt.datetime) -> list[Order]:
        await self._wait()
        async with self._locked_account() as book:
            rows = await book.of_symbol_after(_symbol(symbol), after)
            return [await self._advance(book, row, poll=False) for row in rows]

    async def close_position(self, symbol: str) -> Order | None:
        """A market SELL of exactly the quantity held, under a client order id of the broker's
        own (a UUID, as Alpaca gives)."""
        await self._wait()
        async with self._locked_account(Opening.POSITIONS) as book:
            row = await book.position(_symbol(symbol))
            return None if row is None else await self._close(book, row)

    async def close_all_positions(self) -> list[PositionClose]:
        await self._wait()
        async with self._locked_account(Opening.WORKING) as book:
            for row in await book.working():
                self._set_status(book, row, "canceled")
            closes = []
            for position in await book.positions():
                try:
                    order = await self._close(book, position)
                except BrokerError as error:
                    closes.append(
                        PositionClose(symbol=position.symbol, order=None, error=error.message)
                    )
                else:
                    closes.append(PositionClose(symbol=position.symbol, order=order))
        return closes

    # ------------------------------------------------------------------ market data and time

    async def get_latest_quote(self, symbol: str) -> Quote | None:
        await self._wait()
        return self._quote(_symbol(symbol))

    async def get_latest_trade(self, symbol: str) -> Trade | None:
        await self._wait()
        symbol = _symbol(symbol)
        last = self._last(symbol)
        if last is None:
            return None
        return Trade(symbol=symbol, price=last, size=QUOTE_SIZE, timestamp=self._now())

    async def get_clock(self) -> MarketClock:
        await self._wait()
        now = self._now()
        return MarketClock(
            now=now,
            is_open=market_clock.is_open_at(now),
            next_open=market_clock.next_open(now),
            next_close=market_clock.next_close(now),
        )

    async def get_calendar(self, start: dt.date, end: dt.date) -> list[TradingSession]:
        await self._wait()
        return [
            TradingSession(
                date=session,
                open=market_clock.session_open(session),
                close=market_clock.session_close(session),
            )
            for session in market_clock.sessions_between(start, end)
        ]

    # ------------------------------------------------------------------ the world

    async def _wait(self) -> None:
        if self._settings.sim_latency_ms > 0:
            await self._sleep(self._settings.sim_latency_ms / 1000)

    def _now(self) -> dt.datetime:
        return self._clock()

    def _unsettled_proceeds(self) -> Decimal:
        return sum((amount for amount, _ in self._unsettled), start=Decimal(0))

    def _knows(self, symbol: str) -> bool:
        return symbol in self._bars.closes or self.scenario.knows(symbol)

    def _last(self, symbol: str) -> Decimal | None:
        if symbol in self.scenario.trades:
            return self.scenario.trades[symbol]
        if symbol in self.scenario.quotes:
            return self.scenario.quotes[symbol].quote(symbol, self._now()).mid()
        day = self._now().astimezone(market_clock.NEW_YORK).date()
        key = (symbol, day)
        if key not in self._last_prices:
            self._last_prices[key] = last_price(self._bars, symbol, day, exact=self._at_close)
        return self._last_prices[key]

    def _touch_price(
        self,
        order_type: OrderType,
        side: Side,
        limit_price: Decimal | None,
        quote: Quote | None,
        last: Decimal,
    ) -> Decimal | None:
        """Under the `touch` model, where the order fills at once (None: it works); None under
        every other model."""
        if not self._touch:
            return None
        return fills.touch_fill_price(order_type, side, limit_price, quote, last)

    def _quote(self, symbol: str) -> Quote | None:
        last = self._last(symbol)
        if last is None:
            return None
        fixed = self.scenario.quotes.get(symbol)
        if fixed is not None:
            quote = fixed.quote(symbol, self._now())
        elif self._at_close:
            quote = flat_quote(symbol, last, self._now())
        else:
            quote = derived_quote(symbol, last, self._settings.sim_spread_bps, self._now())
        shape = self.scenario.quote_shapes.get(symbol)
        return quote if shape is None else shaped_quote(quote, last, shape)

    @asynccontextmanager
    async def _locked_account(
        self, opening: Opening = Opening.CASH, key: str | None = None
    ) -> AsyncIterator[Book]:
        """One transaction of this broker, holding the account's row lock until it commits; the
        account is opened with the starting cash on its first use. `opening`: what the call
        reads first (`key`: the order id or client order id it looks up), read by the statement
        that takes the lock. What the call changed is written when it ends without an error (a
        refusal writes nothing)."""
        async with self._engine.begin() as connection:
            book = await Book.open(
                connection,
                self._account_id,
                starting_cash=self._settings.sim_starting_cash,
                now=self._now(),
                opening=opening,
                key=key,
            )
            yield book
            await book.flush()

    async def _state(self, book: Book) -> ledger.AccountState:
        return ledger.account_totals(
            self._account_id,
            book.cash,
            await book.working(),
            await book.positions(),
            values_to_cent=not self._at_close,
        )

    def _stamp(self) -> dt.datetime:
        """The simulated now as the tables keep it (UTC)."""
        return self._now().astimezone(dt.UTC)

    def _set_status(self, book: Book, row: StoredOrder, status: str) -> StoredOrder:
        changed = replace(row, status=status, updated_at=self._stamp())
        book.change(changed)
        return changed

    async def _close(self, book: Book, position: StoredPosition) -> Order:
        return await self._place(
            book,
            client_order_id=str(uuid.uuid4()),
            symbol=position.symbol,
            side=Side.SELL,
            order_type=OrderType.MARKET,
            qty=position.qty,
            limit_price=None,
            closes_position=True,
        )

    async def _place(
        self,
        book: Book,
        *,
        client_order_id: str,
        symbol: str,
        side: Side,
        order_type: OrderType,
        qty: Decimal,
        limit_price: Decimal | None,
        closes_position: bool = False,
    ) -> Order:
        """Check an order as the broker would — known and tradable, then Alpaca's rule table,
        then buying power or the quantity available — record it, and fill it if the model says
        so. A refusal raises before anything is recorded. Outside the session the order is
        queued (`accepted`) and fills from the next open."""
        operation = f"order {client_order_id} ({side.lower()} {_plain(qty)} {symbol})"
        last = self._tradable_price(operation, symbol)
        quote = self._quote(symbol)
        refusal = order_rules.refusal(
            await self._new_order(
                book,
                client_order_id=client_order_id,
                symbol=symbol,
                side=side,
                order_type=order_type,
                qty=qty,
                limit_price=limit_price,
                quote=quote,
                closes_position=closes_position,
            )
        )
        if refusal is not None:
            raise refusal.error(operation)
        hold_price = (
            last
            if self._at_close
            else self._touch_price(order_type, side, limit_price, quote, last)
            or limit_price
            or fills.market_price(side, quote, last)
        )
        status = order_rules.arrival_status(market_clock.is_open_at(self._now()))
        reason = None
        if self._settings.sim_fill_model is FillModel.REJECT_RATE and fills.rejected_by_rate(
            client_order_id, self._settings.sim_reject_rate
        ):
            status = "rejected"
            reason = (
                f"rejected by the simulated broker's reject-rate fill model "
                f"(ALCHEMISER_SIM_REJECT_RATE={self._settings.sim_reject_rate})"
            )
        elif side is Side.BUY:
            await self._check_buying_power(book, operation, qty * hold_price)
        else:
            await self._check_qty_available(book, operation, symbol, qty)
        now = self._stamp()
        row = StoredOrder(
            id=None,
            order_id=str(uuid.uuid4()),
            account_id=self._account_id,
            client_order_id=client_order_id,
            symbol=symbol,
            side=stored_side(side),
            order_type=order_type.value,
            qty=qty,
            limit_price=limit_price,
            hold_price=hold_price,
            status=status,
            filled_qty=Decimal(0),
            filled_avg_price=None,
            reason=reason,
            submitted_at=now,
            updated_at=now,
        )
        book.place(row)
        return await self._advance(book, row, poll=False)

    async def _new_order(
        self,
        book: Book,
        *,
        client_order_id: str,
        symbol: str,
        side: Side,
        order_type: OrderType,
        qty: Decimal,
        limit_price: Decimal | None,
        quote: Quote | None,
        closes_position: bool,
    ) -> order_rules.NewOrder:
        """What Alpaca's rule table reads about this order, from the simulated state."""
        state = await self._state(book)
        start_of_day = dt.datetime.combine(
            self._now().astimezone(market_clock.NEW_YORK).date(),
            dt.time(),
            tzinfo=market_clock.NEW_YORK,
        )
        return order_rules.NewOrder(
            symbol=symbol,
            side=side,
            qty=qty,
            order_type=order_type,
            limit_price=limit_price,
            client_order_id=client_order_id,
            fractionable=symbol not in self.scenario.non_fractionable,
            bid=None if quote is None else quote.bid,
            ask=None if quote is None else quote.ask,
            equity=state.equity,
            open_orders=[
                order_rules.OpenOrder(row.order_id, side_of(row.side), OrderType(row.order_type))
                for row in await book.working()
                if row.symbol == symbol
            ],
            bought_today=side is Side.SELL and await book.bought_since(symbol, start_of_day),
            day_trading=self.scenario.day_trading,
            closes_position=closes_position,
        )

    def _tradable_price(self, operation: str, symbol: str) -> Decimal:
        if not self._knows(symbol):
            raise InvalidOrderError(
                f"{operation}: asset {symbol} is not known to the simulated broker (it has no "
                "bars in the bar store); check the symbol or import its bars",
                code=INVALID_ORDER_CODE,
                http_status=422,
            )
        if symbol in self.scenario.non_tradable:
            raise InvalidOrderError(
                f"{operation}: asset {symbol} is not tradable; leave it out of the plan",
                code=INVALID_ORDER_CODE,
                http_status=422,
            )
        last = self._last(symbol)
        if last is None:
            raise InvalidOrderError(
                f"{operation}: {symbol} has no bar on or before "
                f"{self._now().astimezone(market_clock.NEW_YORK).date()}, so it has no price; "
                "import its bars or move ALCHEMISER_SIM_NOW",
                code=INVALID_ORDER_CODE,
                http_status=422,
            )
        return last

    async def _check_buying_power(self, book: Book, operation: str, cost: Decimal) -> None:
        state = await self._state(book)
        buying_power = state.buying_power - self._unsettled_proceeds()
        if cost > buying_power:
            raise InsufficientBuyingPowerError(
                f"{operation}: insufficient buying power: the order needs {cost:.2f}, "
                f"account {self._account_id} has {buying_power:.2f}; "
                "the order is not retried: reduce it or free cash first",
                code=BUYING_POWER_CODE,
                http_status=403,
            )

    async def _check_qty_available(
        self, book: Book, operation: str, symbol: str, qty: Decimal
    ) -> None:
        position = await book.position(symbol)
        held = Decimal(0) if position is None else position.qty
        available = held - _held_for_sale(await book.working(), symbol)
        if qty > available:
            raise InsufficientQtyAvailableError(
                f"{operation}: insufficient qty available for order "
                f"(requested: {_plain(qty)}, available: {_plain(available)})",
                requested_qty=qty,
                available_qty=available,
                code=BUYING_POWER_CODE,
                http_status=403,
            )

    async def _advance(self, book: Book, row: StoredOrder, *, poll: bool) -> Order:
        """Let the fill model act on a working order: only while the session is open, at once
        (`immediate`, `reject-rate`) or a share per poll (`partial`), unless the scenario
        says otherwise for the symbol. A DAY order still working at the close of the session it
        was placed for (the next one, when placed outside a session) expires."""
        if not row.working:
            return _order(row)
        if row.status == "pending_cancel":
            return _order(await self._end_cancel(book, row))
        if self._now() >= market_clock.next_close(row.submitted_at):
            return _order(self._set_status(book, row, "expired"))
        if not market_clock.is_open_at(self._now()):
            return _order(row)
        quote = self._quote(row.symbol)
        remaining = row.qty - row.filled_qty
        symbol_fill = self.scenario.fills.get(row.symbol)
        if symbol_fill in (SymbolFill.NEVER, SymbolFill.ON_CANCEL):
            return _order(row)
        if symbol_fill is SymbolFill.HALF:
            if row.filled_qty > 0:
                return _order(row)
            qty = fills.partial_fill_qty(row.qty, fills.HALF)
        elif symbol_fill is SymbolFill.IMMEDIATE:
            qty = remaining
        elif self._settings.sim_fill_model is FillModel.PARTIAL:
            if not poll:
                return _order(row)
            qty = fills.partial_fill_qty(remaining, self._settings.sim_partial_fraction)
        else:
            qty = remaining
            last = self._last(row.symbol)
            assert last is not None, "an order is only placed on a symbol with a price"
            at_once = self._touch_price(
                OrderType(row.order_type), side_of(row.side), row.limit_price, quote, last
            )
            if self._touch and at_once is None:
                return _order(row)
        return _order(await self._fill(book, row, qty, quote))

    async def _end_cancel(self, book: Book, row: StoredOrder) -> StoredOrder:
        """A pending cancel ends when its time is up: `canceled`, or `filled` when the scenario
        lets a fill win the race."""
        asked = self._cancels_asked.get(row.order_id)
        if asked is not None:
            asked_at, slow = asked
            if (self._now() - asked_at).total_seconds() < slow.pending_s:
                return row
            del self._cancels_asked[row.order_id]
            if slow.end is CancelEnd.FILLED:
                remaining = row.qty - row.filled_qty
                return await self._fill(book, row, remaining, self._quote(row.symbol))
        return self._set_status(book, row, "canceled")

    async def _fill_remaining_now(self, book: Book, row: StoredOrder) -> StoredOrder:
        if not market_clock.is_open_at(self._now()):
            return row
        return await self._fill(book, row, row.qty - row.filled_qty, self._quote(row.symbol))

    async def _fill(
        self, book: Book, row: StoredOrder, qty: Decimal, quote: Quote | None
    ) -> StoredOrder:
        side = side_of(row.side)
        last = self._last(row.symbol)
        assert last is not None, "an order is only placed on a symbol with a price"
        order_type = OrderType(row.order_type)
        price = (
            last
            if self._at_close
            else self._touch_price(order_type, side, row.limit_price, quote, last)
            or fills.fill_price(order_type, side, row.limit_price, quote, last)
        )
        now = self._stamp()
        filled_qty = row.filled_qty + qty
        previous_value = row.filled_qty * (row.filled_avg_price or Decimal(0))
        filled = replace(
            row,
            filled_qty=filled_qty,
            filled_avg_price=fills.average_price(previous_value + qty * price, filled_qty),
            status="filled" if filled_qty >= row.qty else "partially_filled",
            updated_at=now,
        )
        book.change(filled)
        book.record_fill(row, qty, price, now)
        cash_change = -qty * price if side is Side.BUY else qty * price
        if side is Side.SELL and self.scenario.settlement_reads > 0:
            self._unsettled.append((cash_change, self.scenario.settlement_reads))
        book.cash += cash_change
        await self._move_position(book, row.symbol, side, qty, price, last)
        return filled

    async def _move_position(
        self,
        book: Book,
        symbol: str,
        side: Side,
        qty: Decimal,
        price: Decimal,
        last: Decimal,
    ) -> None:
        position = await book.position(symbol)
        now = self._stamp()
        if side is Side.SELL:
            held = Decimal(0) if position is None else position.qty
            remaining = held - qty
            if remaining <= 0 or position is None:
                await book.set_position(symbol, None)
            else:
                await book.set_position(
                    symbol, replace(position, qty=remaining, last_price=last, updated_at=now)
                )
            return
        if position is None:
            await book.set_position(
                symbol,
                StoredPosition(
                    account_id=self._account_id,
                    symbol=symbol,
                    qty=qty,
                    avg_entry_price=price,
                    last_price=last,
                    updated_at=now,
                ),
            )
            return
        total = position.qty + qty
        average = fills.average_price(position.qty * position.avg_entry_price + qty * price, total)
        await book.set_position(
            symbol,
            replace(position, qty=total, avg_entry_price=average, last_price=last, updated_at=now),
        )

    async def _mark_positions(self, book: Book) -> None:
        """Bring each position's stored price to the simulated date's last price, so the account
        (and `alchemiser broker positions`) values it as the quotes do."""
        for row in await book.positions():
            last = self._last(row.symbol)
            if last is not None and last != row.last_price:
                await book.set_position(row.symbol, replace(row, last_price=last))

    def _position(self, row: StoredPosition, working: list[StoredOrder]) -> Position:
        """`working`: the account's working orders, whose SELLs hold shares of the position."""
        return Position(
            symbol=row.symbol,
            qty=row.qty,
            qty_available=row.qty - _held_for_sale(working, row.symbol),
            market_value=ledger.market_value(row, to_cent=not self._at_close),
            avg_entry_price=row.avg_entry_price,
            current_price=row.last_price,
        )


def _held_for_sale(working: list[StoredOrder], symbol: str) -> Decimal:
    """Shares of `symbol` that working SELL orders still hold (qty − qty_available)."""
    sell = stored_side(Side.SELL)
    return sum(
        (row.qty - row.filled_qty for row in working if row.side == sell and row.symbol == symbol),
        start=Decimal(0),
    )


def _standing_clock(
    settings: SimulatedWorldSettings, bars: BarSnapshot
) -> Callable[[], dt.datetime]:
    """The simulated now stands still: `ALCHEMISER_SIM_NOW`, else the bar store's last close
    window."""
    last_session = bars.last_session if bars.sessions.size else None
    now = market_clock.simulated_now(settings.sim_now, last_session)
    return lambda: now


def _symbol(symbol: str) -> str:
    return symbol.strip().upper()


def _order(row: StoredOrder) -> Order:
    return Order(
        order_id=row.order_id,
        client_order_id=row.client_order_id,
        symbol=row.symbol,
        side=side_of(row.side),
        order_type=OrderType(row.order_type),
        qty=row.qty,
        limit_price=row.limit_price,
        status=ledger.order_status(row),
        broker_status=row.status,
        filled_qty=row.filled_qty,
        filled_avg_price=row.filled_avg_price,
        submitted_at=row.submitted_at,
        updated_at=row.updated_at,
    )


def _matching(existing: Order, request: OrderRequest) -> Order:
    """A repeated submission gets the order already placed under its client order id; an id
    reused for a different order is refused, as Alpaca refuses it."""
    if (existing.symbol, existing.side) == (_symbol(request.symbol), request.side):
        return existing
    raise DuplicateClientOrderIdError(
        f"order {request.client_order_id}: this client order id already names a different order "
        f"({existing.side.lower()} {existing.symbol}, id {existing.order_id}); "
        "client order ids must be unique per order",
        code="40010001",
        http_status=422,
    )
