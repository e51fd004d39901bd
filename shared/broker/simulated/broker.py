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
so two fills on one account never lose an update.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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
from shared.broker.simulated.quotes import QUOTE_SIZE, derived_quote, last_price, shaped_quote
from shared.broker.simulated.scenario import (
    CancelEnd,
    Scenario,
    SlowCancel,
    SubmissionFault,
    SymbolFill,
)
from shared.broker.simulated.tables import (
    side_of,
    sim_accounts,
    sim_fills,
    sim_orders,
    sim_positions,
    stored_side,
)
from shared.eventstore.engine import WRITE_OPTION, create_store_engine
from shared.marketdata.bars import BarSnapshot
from shared.settings import FillModel, Settings
from shared.trading import Quote, Side, flat_quote

POOL_SIZE = 2
ACCOUNT_STATUS = "ACTIVE"
BUYING_POWER_CODE = "40310000"
INVALID_ORDER_CODE = "42210000"

OrderRow = Row[tuple[Any, ...]]


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
        async with self._locked_account() as connection:
            await self._mark_positions(connection)
            state = await ledger.account_state(
                connection, self._account_id, values_to_cent=not self._at_close
            )
        assert state is not None, "the account row was created by _locked_account"
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
        async with self._locked_account() as connection:
            await self._mark_positions(connection)
            rows = await ledger.position_rows(connection, self._account_id)
            return [await self._position(connection, row) for row in rows]

    async def get_position(self, symbol: str) -> Position | None:
        await self._wait()
        async with self._locked_account() as connection:
            await self._mark_positions(connection)
            rows = await ledger.position_rows(connection, self._account_id, _symbol(symbol))
            return await self._position(connection, rows[0]) if rows else None

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
        async with self._locked_account() as connection:
            rows = await ledger.working_orders(connection, self._account_id)
            orders = [await self._advance(connection, row, poll=False) for row in rows]
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
        async with self._locked_account() as connection:
            existing = await self._row(connection, client_order_id=request.client_order_id)
            if existing is not None:
                return _matching(_order(existing), request)
            order = await self._place(
                connection,
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
        async with self._locked_account() as connection:
            row = await self._row(connection, order_id=order_id)
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
                row = await self._fill_remaining_now(connection, row)
            if row.status not in ledger.WORKING_STATUSES:
                return CancelResult(
                    order_id=order_id,
                    outcome=CancelOutcome.ALREADY_TERMINAL,
                    terminal_state=row.status,
                )
            slow = self.scenario.cancels.get(row.symbol)
            if slow is None:
                await self._set_status(connection, order_id, "canceled")
            elif row.status != "pending_cancel":
                self._cancels_asked[order_id] = (self._now(), slow)
                await self._set_status(connection, order_id, "pending_cancel")
        return CancelResult(order_id=order_id, outcome=CancelOutcome.REQUESTED)

    async def get_order(self, order_id: str) -> Order | None:
        await self._wait()
        async with self._locked_account() as connection:
            row = await self._row(connection, order_id=order_id)
            return None if row is None else await self._advance(connection, row, poll=True)

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        await self._wait()
        async with self._locked_account() as connection:
            row = await self._row(connection, client_order_id=client_order_id)
            return None if row is None else await self._advance(connection, row, poll=True)

    async def get_orders(self, symbol: str, after: dt.datetime) -> list[Order]:
        await self._wait()
        async with self._locked_account() as connection:
            rows = await ledger.orders_of_symbol(
                connection, self._account_id, _symbol(symbol), after
            )
            return [await self._advance(connection, row, poll=False) for row in rows]

    async def close_position(self, symbol: str) -> Order | None:
        """A market SELL of exactly the quantity held, under a client order id of the broker's
        own (a UUID, as Alpaca gives)."""
        await self._wait()
        async with self._locked_account() as connection:
            rows = await ledger.position_rows(connection, self._account_id, _symbol(symbol))
            if not rows:
                return None
            return await self._close(connection, rows[0])

    async def close_all_positions(self) -> list[PositionClose]:
        await self._wait()
        async with self._locked_account() as connection:
            for row in await ledger.working_orders(connection, self._account_id):
                await self._set_status(connection, row.order_id, "canceled")
            closes = []
            for position in await ledger.position_rows(connection, self._account_id):
                try:
                    order = await self._close(connection, position)
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
    async def _locked_account(self) -> AsyncIterator[AsyncConnection]:
        """One transaction of this broker, holding the account's row lock until it commits; the
        account is opened with the starting cash on its first use."""
        async with self._engine.begin() as connection:
            insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
            await connection.execute(
                insert(sim_accounts)
                .values(
                    account_id=self._account_id,
                    cash=self._settings.sim_starting_cash,
                    created_at=self._now(),
                )
                .on_conflict_do_nothing(index_elements=["account_id"])
            )
            await connection.execute(
                sa.select(sim_accounts.c.account_id)
                .where(sim_accounts.c.account_id == self._account_id)
                .with_for_update()
            )
            yield connection

    async def _row(
        self,
        connection: AsyncConnection,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> OrderRow | None:
        query = sa.select(sim_orders).where(sim_orders.c.account_id == self._account_id)
        if order_id is not None:
            query = query.where(sim_orders.c.order_id == order_id)
        if client_order_id is not None:
            query = query.where(sim_orders.c.client_order_id == client_order_id)
        return (await connection.execute(query)).first()

    async def _set_status(self, connection: AsyncConnection, order_id: str, status: str) -> None:
        await connection.execute(
            sa.update(sim_orders)
            .where(sim_orders.c.order_id == order_id)
            .values(status=status, updated_at=self._now())
        )

    async def _close(self, connection: AsyncConnection, position: OrderRow) -> Order:
        return await self._place(
            connection,
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
        connection: AsyncConnection,
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
        so. A refusal raises before anything is written. Outside the session the order is
        queued (`accepted`) and fills from the next open."""
        operation = f"order {client_order_id} ({side.lower()} {_plain(qty)} {symbol})"
        last = self._tradable_price(operation, symbol)
        quote = self._quote(symbol)
        refusal = order_rules.refusal(
            await self._new_order(
                connection,
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
            await self._check_buying_power(connection, operation, qty * hold_price)
        else:
            await self._check_qty_available(connection, operation, symbol, qty)
        now = self._now()
        order_id = str(uuid.uuid4())
        await connection.execute(
            sa.insert(sim_orders).values(
                order_id=order_id,
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
        )
        row = await self._row(connection, order_id=order_id)
        assert row is not None
        return await self._advance(connection, row, poll=False)

    async def _new_order(
        self,
        connection: AsyncConnection,
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
        state = await ledger.account_state(
            connection, self._account_id, values_to_cent=not self._at_close
        )
        assert state is not None
        working = await ledger.working_orders(connection, self._account_id, symbol=symbol)
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
                for row in working
            ],
            bought_today=side is Side.SELL
            and await ledger.bought_since(connection, self._account_id, symbol, start_of_day),
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

    async def _check_buying_power(
        self, connection: AsyncConnection, operation: str, cost: Decimal
    ) -> None:
        state = await ledger.account_state(
            connection, self._account_id, values_to_cent=not self._at_close
        )
        assert state is not None
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
        self, connection: AsyncConnection, operation: str, symbol: str, qty: Decimal
    ) -> None:
        rows = await ledger.position_rows(connection, self._account_id, symbol)
        held = rows[0].qty if rows else Decimal(0)
        available = held - await ledger.held_for_sale(connection, self._account_id, symbol)
        if qty > available:
            raise InsufficientQtyAvailableError(
                f"{operation}: insufficient qty available for order "
                f"(requested: {_plain(qty)}, available: {_plain(available)})",
                requested_qty=qty,
                available_qty=available,
                code=BUYING_POWER_CODE,
                http_status=403,
            )

    async def _advance(self, connection: AsyncConnection, row: OrderRow, *, poll: bool) -> Order:
        """Let the fill model act on a working order: only while the session is open, at once
        (`immediate`, `reject-rate`) or a share per poll (`partial`), unless the scenario
        says otherwise for the symbol. A DAY order still working at the close of the session it
        was placed for (the next one, when placed outside a session) expires."""
        if row.status not in ledger.WORKING_STATUSES:
            return _order(row)
        if row.status == "pending_cancel":
            return _order(await self._end_cancel(connection, row))
        if self._now() >= market_clock.next_close(row.submitted_at):
            await self._set_status(connection, row.order_id, "expired")
            return _order(await self._reread(connection, row))
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
        return _order(await self._fill(connection, row, qty, quote))

    async def _end_cancel(self, connection: AsyncConnection, row: OrderRow) -> OrderRow:
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
                return await self._fill(connection, row, remaining, self._quote(row.symbol))
        await self._set_status(connection, row.order_id, "canceled")
        return await self._reread(connection, row)

    async def _fill_remaining_now(self, connection: AsyncConnection, row: OrderRow) -> OrderRow:
        if not market_clock.is_open_at(self._now()):
            return row
        return await self._fill(connection, row, row.qty - row.filled_qty, self._quote(row.symbol))

    async def _fill(
        self, connection: AsyncConnection, row: OrderRow, qty: Decimal, quote: Quote | None
    ) -> OrderRow:
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
        now = self._now()
        filled_qty = row.filled_qty + qty
        previous_value = row.filled_qty * (row.filled_avg_price or Decimal(0))
        await connection.execute(
            sa.update(sim_orders)
            .where(sim_orders.c.order_id == row.order_id)
            .values(
                filled_qty=filled_qty,
                filled_avg_price=fills.average_price(previous_value + qty * price, filled_qty),
                status="filled" if filled_qty >= row.qty else "partially_filled",
                updated_at=now,
            )
        )
        await connection.execute(
            sa.insert(sim_fills).values(
                order_id=row.order_id,
                account_id=self._account_id,
                symbol=row.symbol,
                side=row.side,
                qty=qty,
                price=price,
                filled_at=now,
            )
        )
        cash_change = -qty * price if side is Side.BUY else qty * price
        if side is Side.SELL and self.scenario.settlement_reads > 0:
            self._unsettled.append((cash_change, self.scenario.settlement_reads))
        cash: Decimal = (
            await connection.execute(
                sa.select(sim_accounts.c.cash).where(sim_accounts.c.account_id == self._account_id)
            )
        ).scalar_one()
        await connection.execute(
            sa.update(sim_accounts)
            .where(sim_accounts.c.account_id == self._account_id)
            .values(cash=cash + cash_change)
        )
        await self._move_position(connection, row.symbol, side, qty, price, last)
        return await self._reread(connection, row)

    async def _reread(self, connection: AsyncConnection, row: OrderRow) -> OrderRow:
        updated = await self._row(connection, order_id=row.order_id)
        assert updated is not None
        return updated

    async def _move_position(
        self,
        connection: AsyncConnection,
        symbol: str,
        side: Side,
        qty: Decimal,
        price: Decimal,
        last: Decimal,
    ) -> None:
        rows = await ledger.position_rows(connection, self._account_id, symbol)
        held = rows[0].qty if rows else Decimal(0)
        where = (sim_positions.c.account_id == self._account_id) & (
            sim_positions.c.symbol == symbol
        )
        if side is Side.SELL:
            remaining = held - qty
            if remaining <= 0:
                await connection.execute(sa.delete(sim_positions).where(where))
            else:
                await connection.execute(
                    sa.update(sim_positions)
                    .where(where)
                    .values(qty=remaining, last_price=last, updated_at=self._now())
                )
            return
        if not rows:
            await connection.execute(
                sa.insert(sim_positions).values(
                    account_id=self._account_id,
                    symbol=symbol,
                    qty=qty,
                    avg_entry_price=price,
                    last_price=last,
                    updated_at=self._now(),
                )
            )
            return
        total = held + qty
        average = fills.average_price(held * rows[0].avg_entry_price + qty * price, total)
        await connection.execute(
            sa.update(sim_positions)
            .where(where)
            .values(qty=total, avg_entry_price=average, last_price=last, updated_at=self._now())
        )

    async def _mark_positions(self, connection: AsyncConnection) -> None:
        """Bring each position's stored price to the simulated date's last price, so the account
        (and `alchemiser broker positions`) values it as the quotes do."""
        for row in await ledger.position_rows(connection, self._account_id):
            last = self._last(row.symbol)
            if last is not None and last != row.last_price:
                await connection.execute(
                    sa.update(sim_positions)
                    .where(sim_positions.c.account_id == self._account_id)
                    .where(sim_positions.c.symbol == row.symbol)
                    .values(last_price=last)
                )

    async def _position(self, connection: AsyncConnection, row: OrderRow) -> Position:
        held_for_sale = await ledger.held_for_sale(connection, self._account_id, row.symbol)
        return Position(
            symbol=row.symbol,
            qty=row.qty,
            qty_available=row.qty - held_for_sale,
            market_value=ledger.market_value(row, to_cent=not self._at_close),
            avg_entry_price=row.avg_entry_price,
            current_price=row.last_price,
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


def _order(row: OrderRow) -> Order:
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
