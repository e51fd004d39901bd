"""`Book`: one simulated account inside one broker transaction.

The account's row is locked and its cash read by one statement; its positions and working orders
are read at most once, on first need; the broker's decisions change them in memory, and `flush`
writes what changed just before the commit. A call therefore costs a handful of statements
whatever it reads and changes, never a re-read of what it just wrote
(docs/performance.md, Where the time goes). Nothing is kept between transactions: another broker
instance, or a test writing the tables, is seen by the next call.

The statements are built once, with bound parameters, so SQLAlchemy compiles each once per
engine (its compiled cache) and no call pays for building a statement.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.broker.simulated.ledger import (
    ORDER_LIST_LIMIT,
    WORKING_STATUSES,
    StoredOrder,
    StoredPosition,
)
from shared.broker.simulated.tables import (
    sim_accounts,
    sim_fills,
    sim_orders,
    sim_positions,
    stored_side,
)
from shared.eventstore.engine import insert_unless_present
from shared.trading import Side

_ACCOUNT: sa.BindParameter[str] = sa.bindparam("b_account_id")
_CLIENT_ORDER_ID = sim_orders.c.client_order_id == sa.bindparam("b_client_order_id")
_ORDER_ID = sim_orders.c.order_id == sa.bindparam("b_order_id")
_WORKING = sim_orders.c.status.in_(WORKING_STATUSES)


class Opening(Enum):
    """What `Book.open` reads with the account's cash, by the statement that locks it."""

    CASH = "cash"
    POSITIONS = "positions"
    WORKING = "working orders"
    WORKING_AND_CLIENT_ORDER_ID = "working orders and a client order id"
    """The working orders and the order placed under `key` (a submission needs both)."""
    CLIENT_ORDER_ID = "client order id"
    ORDER_ID = "order id"


def _opening(
    joined: sa.Table, on: sa.ColumnElement[bool], order_by: sa.ColumnElement[Any] | None = None
) -> sa.Select[Any]:
    """Lock the account's row and read its cash and, by the same statement, `joined`'s rows of
    the account that meet `on` (none: one row with nulls)."""
    return (
        sa.select(sim_accounts.c.cash, joined)
        .select_from(
            sim_accounts.outerjoin(joined, (joined.c.account_id == sim_accounts.c.account_id) & on)
        )
        .where(sim_accounts.c.account_id == _ACCOUNT)
        .order_by(order_by)
        .with_for_update(of=sim_accounts)
    )


_OPENINGS = {
    Opening.CASH: sa.select(sim_accounts.c.cash)
    .where(sim_accounts.c.account_id == _ACCOUNT)
    .with_for_update(),
    Opening.POSITIONS: _opening(sim_positions, sa.true(), sim_positions.c.symbol),
    Opening.WORKING: _opening(sim_orders, _WORKING, sim_orders.c.id),
    Opening.WORKING_AND_CLIENT_ORDER_ID: _opening(
        sim_orders, _WORKING | _CLIENT_ORDER_ID, sim_orders.c.id
    ),
    Opening.CLIENT_ORDER_ID: _opening(sim_orders, _CLIENT_ORDER_ID),
    Opening.ORDER_ID: _opening(sim_orders, _ORDER_ID),
}


_POSITIONS = (
    sa.select(sim_positions)
    .where(sim_positions.c.account_id == _ACCOUNT)
    .order_by(sim_positions.c.symbol)
)
_POSITION = (sim_positions.c.account_id == _ACCOUNT) & (
    sim_positions.c.symbol == sa.bindparam("b_symbol")
)
_INSERT_POSITION = sa.insert(sim_positions)
_UPDATE_POSITION = sa.update(sim_positions).where(_POSITION)
_DELETE_POSITION = sa.delete(sim_positions).where(_POSITION)
_UPDATE_CASH = sa.update(sim_accounts).where(sim_accounts.c.account_id == _ACCOUNT)
_ORDERS = sa.select(sim_orders).where(sim_orders.c.account_id == _ACCOUNT)
_WORKING_ORDERS = _ORDERS.where(_WORKING).order_by(sim_orders.c.id)
_BY_ORDER_ID = _ORDERS.where(_ORDER_ID)
_BY_CLIENT_ID = _ORDERS.where(_CLIENT_ORDER_ID)
_OF_SYMBOL_AFTER = (
    _ORDERS.where(sim_orders.c.symbol == sa.bindparam("b_symbol"))
    .where(sim_orders.c.submitted_at > sa.bindparam("b_after"))
    .order_by(sim_orders.c.id.desc())
    .limit(ORDER_LIST_LIMIT)
)
PLACED = sa.select(sim_orders.c.id).where((sim_orders.c.account_id == _ACCOUNT) & _CLIENT_ORDER_ID)
"""Whether an order of the account was placed under a client order id, read without a lock."""
_INSERT_ORDER = sa.insert(sim_orders)
_UPDATE_ORDER = sa.update(sim_orders).where(_ORDER_ID)
_INSERT_FILL = sa.insert(sim_fills)
_BUY = stored_side(Side.BUY)
_BOUGHT_SINCE = (
    sa.select(sim_fills.c.id)
    .where(
        sim_fills.c.order_id.in_(
            sa.select(sim_orders.c.order_id)
            .where(sim_orders.c.account_id == _ACCOUNT)
            .where(sim_orders.c.symbol == sa.bindparam("b_symbol"))
            .where(sim_orders.c.side == _BUY)
        )
    )
    .where(sim_fills.c.filled_at >= sa.bindparam("b_since"))
    .limit(1)
)
"""A BUY fill of the symbol since then; through the account's orders, which are indexed by
account (a fill is indexed by its order only)."""


def _inserted_columns(table: sa.Table) -> tuple[str, ...]:
    """The columns a flush inserts of `table`'s rows: all but the id the database assigns and
    the account, which the statement gives once."""
    return tuple(column.name for column in table.columns if column.name not in ("id", "account_id"))


_ORDER_CHANGE = ("status", "filled_qty", "filled_avg_price", "updated_at")
"""What a placed order's fills and cancels change."""
_POSITION_CHANGE = tuple(name for name in _inserted_columns(sim_positions) if name != "symbol")


def _values(row: StoredOrder | StoredPosition, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


def _placement(order: StoredOrder) -> tuple[bool, int]:
    """Placement order: the stored orders by id, then those placed in this transaction."""
    return (order.id is None, order.id or 0)


class Book:
    """The locked account of one transaction (open it with `Book.open`)."""

    def __init__(self, connection: AsyncConnection, account_id: str, cash: Decimal) -> None:
        self._connection = connection
        self.account_id = account_id
        self.cash = cash
        self._stored_cash = cash
        self._positions: dict[str, StoredPosition] | None = None
        self._stored_symbols: set[str] = set()
        self._moved_symbols: set[str] = set()
        self._orders: dict[str, StoredOrder] = {}
        """Every order read or placed in this transaction, by order id, as it stands now."""
        self._looked_up: set[str] = set()
        """Order ids and client order ids read already, found or not."""
        self._working_read = False
        self._placed: list[str] = []
        self._changed: set[str] = set()
        self._fills: list[dict[str, Any]] = []

    @classmethod
    async def open(
        cls,
        connection: AsyncConnection,
        account_id: str,
        *,
        starting_cash: Decimal,
        now: dt.datetime,
        opening: Opening = Opening.CASH,
        key: str | None = None,
    ) -> Book:
        """Lock the account's row and read its cash and what `opening` names (`key`: the client
        order id or order id it looks up); an account seen for the first time is opened with
        `starting_cash`."""
        parameters = {"b_account_id": account_id}
        if opening is Opening.ORDER_ID:
            parameters["b_order_id"] = str(key)
        elif opening in (Opening.CLIENT_ORDER_ID, Opening.WORKING_AND_CLIENT_ORDER_ID):
            parameters["b_client_order_id"] = str(key)
        rows = (await connection.execute(_OPENINGS[opening], parameters)).all()
        if not rows:
            await connection.execute(
                insert_unless_present(connection, sim_accounts, "account_id").values(
                    account_id=account_id, cash=starting_cash, created_at=now
                )
            )
            rows = (await connection.execute(_OPENINGS[opening], parameters)).all()
        book = cls(connection, account_id, rows[0].cash)
        if opening is Opening.CASH:
            return book
        joined = [row[1:] for row in rows if row[1] is not None]
        if opening is Opening.POSITIONS:
            book._positions = {row.symbol: row for row in map(_position, joined)}
            book._stored_symbols = set(book._positions)
        else:
            for order in map(_order, joined):
                book._orders[order.order_id] = order
            book._working_read = opening in (Opening.WORKING, Opening.WORKING_AND_CLIENT_ORDER_ID)
            if key is not None:
                book._looked_up.add(key)
        return book

    # ------------------------------------------------------------------ positions

    async def positions(self) -> list[StoredPosition]:
        """The account's positions by symbol."""
        return sorted((await self._position_map()).values(), key=lambda row: row.symbol)

    async def position(self, symbol: str) -> StoredPosition | None:
        return (await self._position_map()).get(symbol)

    async def set_position(self, symbol: str, position: StoredPosition | None) -> None:
        """Hold `position` of `symbol` from now on (None: none)."""
        held = await self._position_map()
        if position is None:
            held.pop(symbol, None)
        else:
            held[symbol] = position
        self._moved_symbols.add(symbol)

    async def _position_map(self) -> dict[str, StoredPosition]:
        if self._positions is None:
            rows = await self._connection.execute(_POSITIONS, {"b_account_id": self.account_id})
            self._positions = {row.symbol: row for row in map(_position, rows)}
            self._stored_symbols = set(self._positions)
        return self._positions

    # ------------------------------------------------------------------ orders

    async def working(self) -> list[StoredOrder]:
        """The orders that can still fill, in placement order."""
        if not self._working_read:
            await self._read_orders(_WORKING_ORDERS, {})
            self._working_read = True
        return sorted((row for row in self._orders.values() if row.working), key=_placement)

    async def by_client_order_id(self, client_order_id: str) -> StoredOrder | None:
        """The order placed under `client_order_id`."""
        if client_order_id not in self._looked_up:
            await self._read_orders(_BY_CLIENT_ID, {"b_client_order_id": client_order_id})
            self._looked_up.add(client_order_id)
        return next(
            (row for row in self._orders.values() if row.client_order_id == client_order_id),
            None,
        )

    async def by_order_id(self, order_id: str) -> StoredOrder | None:
        if order_id not in self._looked_up:
            await self._read_orders(_BY_ORDER_ID, {"b_order_id": order_id})
            self._looked_up.add(order_id)
        return self._orders.get(order_id)

    async def of_symbol_after(self, symbol: str, after: dt.datetime) -> list[StoredOrder]:
        """The orders of `symbol` submitted after `after`, newest first (at most 500, as Alpaca
        lists them)."""
        rows = await self._read_orders(_OF_SYMBOL_AFTER, {"b_symbol": symbol, "b_after": after})
        return [self._orders[order_id] for order_id in rows]

    def place(self, order: StoredOrder) -> None:
        self._orders[order.order_id] = order
        self._placed.append(order.order_id)

    def change(self, order: StoredOrder) -> None:
        """`order` (read or placed in this transaction) stands so from now on."""
        self._orders[order.order_id] = order
        if order.order_id not in self._placed:
            self._changed.add(order.order_id)

    def record_fill(
        self, order: StoredOrder, qty: Decimal, price: Decimal, filled_at: dt.datetime
    ) -> None:
        self._fills.append(
            {
                "order_id": order.order_id,
                "account_id": self.account_id,
                "symbol": order.symbol,
                "side": order.side,
                "qty": qty,
                "price": price,
                "filled_at": filled_at,
            }
        )

    async def bought_since(self, symbol: str, since: dt.datetime) -> bool:
        """Whether `symbol` was bought since `since` (a BUY fill) or a BUY of it is working: a
        SELL now would close a day trade."""
        if any(row.side == _BUY and row.symbol == symbol for row in await self.working()):
            return True
        if any(
            fill["side"] == _BUY and fill["symbol"] == symbol and fill["filled_at"] >= since
            for fill in self._fills
        ):
            return True
        found = await self._connection.scalar(
            _BOUGHT_SINCE, {"b_account_id": self.account_id, "b_symbol": symbol, "b_since": since}
        )
        return found is not None

    async def _read_orders(
        self, statement: sa.Select[Any], parameters: dict[str, Any]
    ) -> list[str]:
        """Read orders into the book, keeping the version in memory of any read before; the
        ids read, in the statement's order."""
        rows = await self._connection.execute(
            statement, {"b_account_id": self.account_id, **parameters}
        )
        ids = []
        for row in rows:
            self._orders.setdefault(row.order_id, _order(row))
            ids.append(row.order_id)
        return ids

    # ------------------------------------------------------------------ writing back

    async def flush(self) -> None:
        """Write what changed: new orders in placement order, changed orders, fills, cash and
        positions. On PostgreSQL by one statement (each statement is a round trip, and a filled
        order changes four tables); on SQLite, where a statement costs no round trip, by one
        statement per table."""
        changes = self._changes()
        if not changes:
            return
        if self._connection.dialect.name == "postgresql":
            await self._connection.execute(_FLUSH_AT_ONCE, _as_arrays(self.account_id, changes))
            return
        for statement, parameters in changes.items():
            await self._connection.execute(statement, parameters)

    def _changes(self) -> dict[sa.Executable, list[dict[str, Any]]]:
        """Each write statement that has rows to write, with their parameters, in the order
        SQLite runs them."""
        account = self.account_id
        changed = [
            {"b_order_id": order_id} | _values(self._orders[order_id], _ORDER_CHANGE)
            for order_id in sorted(self._changed)
        ]
        held = self._positions or {}
        inserts, updates, deletes = [], [], []
        for symbol in sorted(self._moved_symbols):
            position = held.get(symbol)
            key = {"b_account_id": account, "b_symbol": symbol}
            if position is None:
                if symbol in self._stored_symbols:
                    deletes.append(key)
            elif symbol in self._stored_symbols:
                updates.append(key | _values(position, _POSITION_CHANGE))
            else:
                inserts.append(_columns(position))
        cash = (
            [{"b_account_id": account, "cash": self.cash}] if self.cash != self._stored_cash else []
        )
        writes: list[tuple[sa.Executable, list[dict[str, Any]]]] = [
            (
                _INSERT_ORDER,
                [_columns(self._orders[order_id], but="id") for order_id in self._placed],
            ),
            (_UPDATE_ORDER, changed),
            (_INSERT_FILL, self._fills),
            (_UPDATE_CASH, cash),
            (_DELETE_POSITION, deletes),
            (_UPDATE_POSITION, updates),
            (_INSERT_POSITION, inserts),
        ]
        return {statement: parameters for statement, parameters in writes if parameters}


_ARRAYS: dict[sa.Executable, tuple[str, tuple[str, ...]]] = {
    _INSERT_ORDER: ("o", _inserted_columns(sim_orders)),
    _UPDATE_ORDER: ("c", ("b_order_id", *_ORDER_CHANGE)),
    _INSERT_FILL: ("f", _inserted_columns(sim_fills)),
    _DELETE_POSITION: ("d", ("b_symbol",)),
    _UPDATE_POSITION: ("u", ("b_symbol", *_POSITION_CHANGE)),
    _INSERT_POSITION: ("i", _inserted_columns(sim_positions)),
}
"""The rows of each write statement as `_FLUSH_AT_ONCE` takes them: an alias, and the columns
(a `b_` name is the statement's key), each passed as one array named `<alias>_<column>`."""


def _columns_of(statement: sa.Executable) -> list[str]:
    return [column.removeprefix("b_") for column in _ARRAYS[statement][1]]


def _rows(statement: sa.Executable, *, ordinality: str | None = None) -> str:
    """`unnest` of a statement's arrays as a table named by its alias (timestamps typed so)."""
    alias = _ARRAYS[statement][0]
    columns = _columns_of(statement)
    arrays = ", ".join(
        f"CAST(:{alias}_{column} AS {'timestamptz' if column.endswith('_at') else 'text'}[])"
        for column in columns
    )
    numbered = " WITH ORDINALITY" if ordinality else ""
    names = ", ".join(columns + ([ordinality] if ordinality else []))
    return f"unnest({arrays}){numbered} AS {alias}({names})"


def _inserted(table: str, statement: sa.Executable) -> str:
    """Insert a statement's rows (with the account) in the order given."""
    alias, columns = _ARRAYS[statement][0], _columns_of(statement)
    return (
        f"INSERT INTO {table} (account_id, {', '.join(columns)}) "
        f"SELECT :account_id, {', '.join(f'{alias}.{column}' for column in columns)} "
        f"FROM {_rows(statement, ordinality='given')} ORDER BY {alias}.given"
    )


def _updated(table: str, statement: sa.Executable, key: str) -> str:
    """Set the columns after `key` of the account's rows whose `key` matches a row's."""
    alias, columns = _ARRAYS[statement][0], _columns_of(statement)
    return (
        f"UPDATE {table} SET {', '.join(f'{column} = {alias}.{column}' for column in columns[1:])} "
        f"FROM {_rows(statement)} "
        f"WHERE {table}.account_id = :account_id AND {table}.{key} = {alias}.{key}"
    )


_FLUSH_AT_ONCE = sa.text(
    f"WITH placed AS ({_inserted('sim_orders', _INSERT_ORDER)}), "
    f"changed AS ({_updated('sim_orders', _UPDATE_ORDER, 'order_id')}), "
    f"filled AS ({_inserted('sim_fills', _INSERT_FILL)}), "
    "cash AS (UPDATE sim_accounts SET cash = CAST(:cash AS text) "
    "WHERE account_id = :account_id AND CAST(:cash AS text) IS NOT NULL), "
    "closed AS (DELETE FROM sim_positions "
    "WHERE account_id = :account_id AND symbol = ANY(CAST(:d_symbol AS text[]))), "
    f"moved AS ({_updated('sim_positions', _UPDATE_POSITION, 'symbol')}), "
    f"opened AS ({_inserted('sim_positions', _INSERT_POSITION)}) "
    "SELECT 1"
)
"""Every write of a flush as one PostgreSQL statement: each part takes its rows as arrays, one
per column (empty: it writes nothing); the parts touch disjoint rows, so that they all see the
snapshot from before the statement does not matter. Orders and fills get their ids in the
order given."""


def _as_arrays(
    account_id: str, changes: dict[sa.Executable, list[dict[str, Any]]]
) -> dict[str, Any]:
    """`_FLUSH_AT_ONCE`'s parameters: each statement's rows as one array per column (decimals as
    their text, as `DecimalText` stores them)."""
    parameters: dict[str, Any] = {"account_id": account_id, "cash": None}
    if _UPDATE_CASH in changes:
        parameters["cash"] = str(changes[_UPDATE_CASH][0]["cash"])
    for statement, (alias, columns) in _ARRAYS.items():
        rows = changes.get(statement, [])
        for column, name in zip(columns, _columns_of(statement), strict=True):
            parameters[f"{alias}_{name}"] = [_text(row[column]) for row in rows]
    return parameters


def _text(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _order(row: Sequence[Any]) -> StoredOrder:
    """A `sim_orders` row (its columns in the table's order, as the dataclass lists them)."""
    return StoredOrder(*row)


def _position(row: Sequence[Any]) -> StoredPosition:
    """A `sim_positions` row (its columns in the table's order, as the dataclass lists them)."""
    return StoredPosition(*row)


def _columns(row: StoredOrder | StoredPosition, *, but: str | None = None) -> dict[str, Any]:
    """A stored record as the parameters of its row."""
    return {name: value for name, value in vars(row).items() if name != but}
