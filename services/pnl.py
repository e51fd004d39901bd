"""The P&L projection (docs/trading-rules.md, Profit and loss): a fold over the event store, on
top of the trade ledger's fills, into one book per account — FIFO lots from the recorded fills
(never the broker's average price), cash, realised P&L and fees per trading date, the equity at
each day's last valuation, and the per-strategy attribution of each price move.

Like the trade ledger it is only a fold: `rebuild` reads every event from the first position; a
maintained copy applies new events as they come (`catch_up`) and checkpoints itself as JSON with
the last position it applied. `view` answers "what did this account make" for a period, marked
at the last recorded valuation prices or at marks the caller brings (a live quote).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from services.projections import PAGE_SIZE, UNATTRIBUTED, TradeLedger, contributions
from shared.events import (
    OrderFilled,
    RebalancePlanned,
    SignalGenerated,
    TradeExecuted,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowStarted,
)
from shared.workflow import is_dry_run_id

if TYPE_CHECKING:
    # Annotations only: the event store loads SQLAlchemy and Alembic, which a report never needs.
    from shared.eventstore.port import EventStoreReader
    from shared.eventstore.records import RecordedEvent

CENT = Decimal("0.01")

Target = dict[str, dict[str, Decimal]]
"""strategy → symbol → its contribution a_f·A_f(s) to the consolidated target weight."""


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


@dataclass
class Lot:
    qty: Decimal
    cost: Decimal
    """What the lot's shares cost in all, at their fill price."""


@dataclass
class AccountBook:
    """One account from its first recorded plan on: what it held then is its opening lots, at
    that plan's prices, so its starting capital is the equity the system first saw."""

    starting_capital: Decimal
    cash: Decimal
    lots: dict[str, list[Lot]] = field(default_factory=dict)
    """symbol → open lots, oldest first."""
    marks: dict[str, Decimal] = field(default_factory=dict)
    """symbol → the latest valuation price recorded for it."""
    closing_equity: dict[str, Decimal] = field(default_factory=dict)
    """trading date → equity at that day's last valuation, after that day's fills."""
    realised: dict[str, Decimal] = field(default_factory=dict)
    fees: dict[str, Decimal] = field(default_factory=dict)
    """trading date → fees charged on fills. Neither broker reports a fee on a fill, and the
    events record none, so it stays empty until one does (docs/decisions.md)."""
    attributed: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    """trading date → strategy → its attributed P&L that day."""
    target: Target = field(default_factory=dict)
    """The target of the last workflow that executed: what each strategy owns now."""
    unmatched: dict[str, Decimal] = field(default_factory=dict)
    """symbol → shares sold beyond the recorded lots (bought outside this system after the
    first plan): sold at no recorded cost, so they realise nothing."""

    def held(self, symbol: str) -> Decimal:
        return sum((lot.qty for lot in self.lots.get(symbol, ())), Decimal(0))

    def cost_basis(self, symbol: str) -> Decimal:
        return sum((lot.cost for lot in self.lots.get(symbol, ())), Decimal(0))

    def value(self, symbol: str) -> Decimal:
        """The position at its mark, to the cent as a broker reports market value."""
        return cents(self.held(symbol) * self.marks[symbol])

    def equity(self) -> Decimal:
        return self.cash + sum((self.value(symbol) for symbol in self.lots), Decimal(0))

    def revalue(self, marks: Mapping[str, Decimal], day: str) -> None:
        """A valuation at new prices: each strategy is credited its share of the target times
        the equity before the move times each symbol's return since the last valuation."""
        if self.target and self.marks:
            before = self.equity()
            credited = self.attributed.setdefault(day, {})
            for strategy, weights in self.target.items():
                for symbol, weight in weights.items():
                    old, new = self.marks.get(symbol), marks.get(symbol)
                    if old and new:
                        credited[strategy] = credited.get(
                            strategy, Decimal(0)
                        ) + weight * before * (new / old - 1)
        self.marks.update(marks)
        self.closing_equity[day] = self.equity()

    def fill(self, side: str, symbol: str, qty: Decimal, amount: Decimal, day: str) -> None:
        """`qty` more shares of `symbol` traded for `amount` dollars in all."""
        self.marks.setdefault(symbol, amount / qty)
        if side == "BUY":
            self.cash -= amount
            self.lots.setdefault(symbol, []).append(Lot(qty, amount))
        else:
            self.cash += amount
            cost = self._take(symbol, qty)
            self.realised[day] = self.realised.get(day, Decimal(0)) + amount - cost
        self.closing_equity[day] = self.equity()

    def _take(self, symbol: str, qty: Decimal) -> Decimal:
        """The cost of the `qty` oldest shares, taken out of the lots (first in, first out)."""
        lots, cost, left = self.lots.get(symbol, []), Decimal(0), qty
        while left > 0 and lots:
            lot = lots[0]
            if lot.qty <= left:
                cost, left = cost + lot.cost, left - lot.qty
                lots.pop(0)
            else:
                part = lot.cost * left / lot.qty
                lot.qty, lot.cost = lot.qty - left, lot.cost - part
                cost, left = cost + part, Decimal(0)
        if not lots:
            self.lots.pop(symbol, None)
        if left > 0:
            self.unmatched[symbol] = self.unmatched.get(symbol, Decimal(0)) + left
            cost += left * self.marks[symbol]
        return cost


@dataclass(frozen=True)
class DayPnl:
    date: str
    pnl: Decimal
    realised: Decimal
    fees: Decimal
    equity: Decimal


@dataclass(frozen=True)
class PositionPnl:
    symbol: str
    qty: Decimal
    cost_basis: Decimal
    price: Decimal
    market_value: Decimal
    unrealised: Decimal


@dataclass(frozen=True)
class PnlView:
    """An account's P&L over a period, in cents: starting_equity + realised + unrealised − fees
    = equity, and the strategies of `by_strategy` (the unattributed bucket among them) add up to
    `pnl` (docs/trading-rules.md, Profit and loss)."""

    account_id: str
    since: str | None
    as_of: str
    starting_equity: Decimal
    equity: Decimal
    pnl: Decimal
    realised: Decimal
    unrealised: Decimal
    fees: Decimal
    day_pnl: Decimal
    """The P&L of the last day of the view (`as_of`)."""
    by_strategy: dict[str, Decimal]
    days: tuple[DayPnl, ...]
    positions: tuple[PositionPnl, ...]
    unmatched: dict[str, Decimal]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PnlLedger:
    trades: TradeLedger = field(default_factory=TradeLedger)
    books: dict[str, AccountBook] = field(default_factory=dict)
    trading_dates: dict[str, str] = field(default_factory=dict)
    """workflow id → its trading date, while it runs."""
    pending: dict[str, Target] = field(default_factory=dict)
    """workflow id → its target, until it executes (then it is its account's) or fails."""

    @property
    def last_position(self) -> int:
        return self.trades.last_position

    def apply(self, recorded: RecordedEvent) -> None:
        if recorded.position <= self.trades.last_position:
            return  # already folded in: applying is idempotent
        event = recorded.event
        workflow = event.correlation_id
        before = (
            self.trades.fills.get(event.client_order_id) if isinstance(event, OrderFilled) else None
        )
        self.trades.apply(recorded)
        if is_dry_run_id(workflow):
            return  # a dry run trades nothing and values nothing (docs/trading-rules.md, Dry runs)
        if isinstance(event, WorkflowStarted):
            self.trading_dates[workflow] = event.trading_date.isoformat()
        elif isinstance(event, SignalGenerated):
            self.pending[workflow] = contributions(event)
        elif isinstance(event, RebalancePlanned):
            self._valued(event)
        elif isinstance(event, OrderFilled) and event.account_id in self.books:
            # filled_qty and avg_fill_price are cumulative on the broker order: trade the rest
            done = (before.filled_qty, before.filled_qty * before.fill_price) if before else None
            qty = event.filled_qty - (done[0] if done else 0)
            if qty > 0:
                amount = event.filled_qty * event.avg_fill_price - (done[1] if done else 0)
                day = self.trading_dates.get(workflow, event.occurred_at.date().isoformat())
                self.books[event.account_id].fill(event.side, event.symbol, qty, amount, day)
        elif isinstance(event, TradeExecuted) and event.account_id in self.books:
            target = self.pending.pop(workflow, None)
            if target is not None:
                self.books[event.account_id].target = target
        elif isinstance(event, WorkflowCompleted | WorkflowFailed):
            self.pending.pop(workflow, None)
            self.trading_dates.pop(workflow, None)

    def _valued(self, plan: RebalancePlanned) -> None:
        snapshot = plan.snapshot
        mids = {quote.symbol: quote.mid() for quote in snapshot.quotes}
        marks = {symbol: mid for symbol, mid in mids.items() if mid}
        marks.update({p.symbol: p.price for p in snapshot.positions if p.price > 0})
        day = self.trading_dates.get(plan.correlation_id, plan.occurred_at.date().isoformat())
        book = self.books.get(plan.account_id)
        if book is None:
            opening = {p.symbol: Lot(p.qty, cents(p.qty * p.price)) for p in snapshot.positions}
            book = AccountBook(
                starting_capital=snapshot.cash
                + sum((lot.cost for lot in opening.values()), Decimal(0)),
                cash=snapshot.cash,
                lots={symbol: [lot] for symbol, lot in opening.items() if lot.qty > 0},
            )
            self.books[plan.account_id] = book
        book.revalue(marks, day)

    def view(
        self,
        account_id: str,
        *,
        since: date | None = None,
        marks: Mapping[str, Decimal] | None = None,
        as_of: date | None = None,
    ) -> PnlView | None:
        """The account's P&L since `since` (else since its first plan), marked at `marks` where
        given (a valuation on `as_of`, else on the last recorded day) and at the last recorded
        valuation price otherwise; None for an account with no recorded plan."""
        if account_id not in self.books:
            return None
        book = copy.deepcopy(self.books[account_id])
        last = max(book.closing_equity)
        if marks:
            day = max(last, as_of.isoformat()) if as_of else last
            book.revalue(marks, day)
            last = day
        start = since.isoformat() if since else ""
        dates = sorted(book.closing_equity)
        earlier = [d for d in dates if d < start]
        starting = cents(book.closing_equity[earlier[-1]] if earlier else book.starting_capital)
        days, previous = [], starting
        for day in (d for d in dates if d >= start):
            closing = cents(book.closing_equity[day])
            days.append(
                DayPnl(
                    date=day,
                    pnl=closing - previous,
                    realised=cents(book.realised.get(day, Decimal(0))),
                    fees=cents(book.fees.get(day, Decimal(0))),
                    equity=closing,
                )
            )
            previous = closing
        equity = cents(book.equity())
        pnl = equity - starting
        realised, fees = _total(book.realised, start), _total(book.fees, start)
        by_strategy: dict[str, Decimal] = {}
        for day in (d for d in book.attributed if d >= start):
            for strategy, amount in book.attributed[day].items():
                by_strategy[strategy] = by_strategy.get(strategy, Decimal(0)) + amount
        shown = {strategy: cents(amount) for strategy, amount in sorted(by_strategy.items())}
        shown[UNATTRIBUTED] = pnl - sum(shown.values(), Decimal(0))
        return PnlView(
            account_id=account_id,
            since=since.isoformat() if since else None,
            as_of=last,
            starting_equity=starting,
            equity=equity,
            pnl=pnl,
            realised=realised,
            unrealised=pnl - realised + fees,
            fees=fees,
            day_pnl=days[-1].pnl if days and days[-1].date == last else Decimal(0),
            by_strategy=shown,
            days=tuple(days),
            positions=tuple(
                PositionPnl(
                    symbol=symbol,
                    qty=book.held(symbol),
                    cost_basis=cents(book.cost_basis(symbol)),
                    price=book.marks[symbol],
                    market_value=book.value(symbol),
                    unrealised=book.value(symbol) - cents(book.cost_basis(symbol)),
                )
                for symbol in sorted(book.lots)
            ),
            unmatched=dict(book.unmatched),
        )

    def to_document(self) -> str:
        return json.dumps(
            {
                "trades": json.loads(self.trades.to_document()),
                "books": {account: asdict(book) for account, book in self.books.items()},
                "trading_dates": self.trading_dates,
                "pending": self.pending,
            },
            default=str,
            sort_keys=True,
        )

    @classmethod
    def from_document(cls, document: str) -> PnlLedger:
        data: dict[str, Any] = json.loads(document)
        books = {}
        for account, raw in data["books"].items():
            books[account] = AccountBook(
                starting_capital=Decimal(raw["starting_capital"]),
                cash=Decimal(raw["cash"]),
                lots={
                    symbol: [Lot(Decimal(lot["qty"]), Decimal(lot["cost"])) for lot in lots]
                    for symbol, lots in raw["lots"].items()
                },
                marks=_decimals(raw["marks"]),
                closing_equity=_decimals(raw["closing_equity"]),
                realised=_decimals(raw["realised"]),
                fees=_decimals(raw["fees"]),
                attributed=_nested(raw["attributed"]),
                target=_nested(raw["target"]),
                unmatched=_decimals(raw["unmatched"]),
            )
        return cls(
            trades=TradeLedger.from_document(json.dumps(data["trades"])),
            books=books,
            trading_dates=data["trading_dates"],
            pending={workflow: _nested(target) for workflow, target in data["pending"].items()},
        )

    async def catch_up(self, store: EventStoreReader) -> None:
        async for page in store.replay(self.last_position, PAGE_SIZE):
            for recorded in page:
                self.apply(recorded)

    @classmethod
    async def rebuild(cls, store: EventStoreReader) -> PnlLedger:
        ledger = cls()
        await ledger.catch_up(store)
        return ledger


async def pnl_view(
    store: EventStoreReader,
    account_id: str,
    *,
    since: date | None = None,
    marks: Mapping[str, Decimal] | None = None,
    as_of: date | None = None,
) -> PnlView | None:
    """The P&L of one account read from the store (see `PnlLedger.view`): the one call a reader
    that keeps no ledger of its own needs."""
    ledger = await PnlLedger.rebuild(store)
    return ledger.view(account_id, since=since, marks=marks, as_of=as_of)


def _total(by_date: Mapping[str, Decimal], start: str) -> Decimal:
    return cents(sum((amount for day, amount in by_date.items() if day >= start), Decimal(0)))


def _decimals(raw: Mapping[str, str]) -> dict[str, Decimal]:
    return {key: Decimal(value) for key, value in raw.items()}


def _nested(raw: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, Decimal]]:
    return {key: _decimals(inner) for key, inner in raw.items()}
