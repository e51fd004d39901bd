"""The session loop: one simulated account traded to given targets at each session's close, by
the live planner and execution's sizing.

Each session the account is valued at the close; when the schedule says so, the live planner
(`plan_rebalance`) plans from the account as a broker would report it under the `close` fill
model (bid = ask = the close), execution's sizing (`size_order`, every symbol fractionable as in
the simulated world) turns each SELL, then each BUY, into a quantity, and the fill is the close
moved by the slippage, less Composer's fees on sells. Money is Decimal throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from services.backtest.costs import FeeModel, fill_fees, fill_price
from services.backtest.rebalance_schedule import RebalanceSchedule
from services.backtest.result import Costs, Order
from services.execution.sizing import AssetInfo, SizingOutcome, is_liquidation, size_order
from services.portfolio.plan_mapping import planning_account
from services.portfolio.planner import TradeAction, plan_rebalance
from shared.trading import Quote, Side

FRACTIONABLE = AssetInfo(tradable=True, fractionable=True)
"""Every symbol of the bars, as in the simulated world."""
HOLD, SELL = TradeAction.HOLD, Side.SELL
SIDES = {TradeAction.SELL: Side.SELL, TradeAction.BUY: Side.BUY}
"""Read once, not through the enum classes (a lookup each in Python 3.11, `Side(value)` a call):
every symbol of every plan is checked for a HOLD, and each order reads its side five times."""

Quotes = Callable[[int, Collection[str]], dict[str, Quote]]
"""The symbols' quotes at a session index, by symbol: each its close on both sides, as the
`close` fill model quotes it. One call per session, not per symbol: a backtest of ten files
quotes 380,000 symbols."""


@dataclass(frozen=True)
class TradingRules:
    """The live rules a backtest trades under, each a command-line option."""

    schedule: RebalanceSchedule
    cash_reserve: Decimal
    min_trade_fraction: Decimal
    min_notional_usd: Decimal
    """Execution's skip of a fractionable BUY worth less (ALCHEMISER_EXEC_MIN_NOTIONAL_USD)."""
    slippage_bps: Decimal
    fees: FeeModel

    def without_costs(self) -> TradingRules:
        return TradingRules(
            self.schedule,
            self.cash_reserve,
            self.min_trade_fraction,
            self.min_notional_usd,
            Decimal(0),
            "none",
        )

    @property
    def charges_costs(self) -> bool:
        return self.slippage_bps > 0 or self.fees != "none"


@dataclass(frozen=True)
class SessionTrades:
    """One session's orders; the index is the session's position in the run."""

    session: int
    orders: tuple[Order, ...]
    costs: Costs


@dataclass
class SimulatedRun:
    """What the account did, one entry per session of the run."""

    dates: Sequence[date]
    equity: list[Decimal] = field(default_factory=list)
    invested: list[Decimal] = field(default_factory=list)
    traded: list[Decimal] = field(default_factory=list)
    """Buys plus sells at their fill prices."""
    order_counts: list[int] = field(default_factory=list)
    trades: list[SessionTrades] = field(default_factory=list)
    allocations: list[dict[str, float]] = field(default_factory=list)
    slippage: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    first_non_positive_cash: tuple[date, Decimal] | None = None
    """The first rebalance planned from zero or negative cash, which live would have refused."""


def simulate(
    dates: Sequence[date],
    sessions: Sequence[int],
    targets: Sequence[Mapping[str, Decimal]],
    quotes: Quotes,
    rules: TradingRules,
    capital: Decimal,
    *,
    on_session: Callable[[], None] | None = None,
    allocations: bool = True,
) -> SimulatedRun:
    """Trade `capital` to `targets` over the run: `dates[i]` is the run's i-th session, at index
    `sessions[i]` of `quotes`, and `targets[i]` the weights decided for it. `allocations=False`
    leaves `run.allocations` empty: a backtest draws the holdings of its consolidated run only."""
    run = SimulatedRun(dates)
    account = _Account(cash=capital)
    opening = rules.schedule.opening_sessions(dates)
    traded_symbols: frozenset[str] = frozenset()
    invested_fraction = 1 - rules.cash_reserve
    for index, (day, session, target) in enumerate(zip(dates, sessions, targets, strict=True)):
        quoted = quotes(session, {*account.positions, *target})
        closes = {symbol: quote.bid for symbol, quote in quoted.items()}
        values = account.values(closes)
        portfolio_value = account.cash + sum(values.values(), Decimal(0))
        trades = None
        if (
            index == 0
            or opening[index]
            or rules.schedule.drifted(
                target=target,
                traded_symbols=traded_symbols,
                held_weights=_weights(values, portfolio_value),
                invested_fraction=invested_fraction,
            )
        ):
            if account.cash <= 0 and run.first_non_positive_cash is None:
                run.first_non_positive_cash = (day, account.cash)
            trades = account.rebalance(quoted, portfolio_value, target, rules)
            traded_symbols = frozenset(symbol for symbol, weight in target.items() if weight > 0)
        values = account.values(closes)
        invested = sum(values.values(), Decimal(0))
        equity = account.cash + invested
        run.equity.append(equity)
        run.invested.append(invested)
        if allocations:
            run.allocations.append(
                {s: float(w) for s, w in sorted(_weights(values, equity).items())}
            )
        if trades:
            run.trades.append(SessionTrades(index, trades.orders, trades.costs))
            run.traded.append(sum((order.value for order in trades.orders), Decimal(0)))
            run.order_counts.append(len(trades.orders))
            run.slippage += trades.costs.slippage
            run.fees += trades.costs.fees
        else:
            run.traded.append(Decimal(0))
            run.order_counts.append(0)
        if on_session is not None:
            on_session()
    return run


def _weights(values: Mapping[str, Decimal], portfolio_value: Decimal) -> dict[str, Decimal]:
    if portfolio_value <= 0:
        return {}
    return {symbol: value / portfolio_value for symbol, value in values.items()}


@dataclass(frozen=True)
class _Filled:
    orders: tuple[Order, ...]
    costs: Costs

    def __bool__(self) -> bool:
        return bool(self.orders)


@dataclass
class _Account:
    cash: Decimal
    positions: dict[str, Decimal] = field(default_factory=dict)

    def values(self, closes: Mapping[str, Decimal]) -> dict[str, Decimal]:
        return {symbol: qty * closes[symbol] for symbol, qty in self.positions.items()}

    def rebalance(
        self,
        quotes: Mapping[str, Quote],
        portfolio_value: Decimal,
        target: Mapping[str, Decimal],
        rules: TradingRules,
    ) -> _Filled:
        """Plan as the portfolio service does, then execute the SELLs and the BUYs in plan
        order as execution sizes them, each filled at once."""
        plan = plan_rebalance(
            planning_account(self.cash, portfolio_value, self.positions, quotes.values()),
            target,
            rules.cash_reserve,
            min_trade_fraction=rules.min_trade_fraction,
            require_positive_cash=False,
        )
        orders: list[Order] = []
        slippage = fees = Decimal(0)
        for item in plan.items:
            if item.action is HOLD:
                continue
            side = SIDES[item.action]
            held = self.positions.get(item.symbol, Decimal(0))
            close = quotes[item.symbol].bid
            sized = size_order(
                side=side,
                trade_amount=item.trade_amount,
                liquidation=is_liquidation(side, item.target_weight),
                price=close,
                position_qty=held if side is SELL else None,
                qty_available=held if side is SELL else None,
                asset=FRACTIONABLE,
                min_notional_usd=rules.min_notional_usd,
            )
            if sized.outcome is not SizingOutcome.SIZED:
                continue
            quantity = sized.qty
            price = fill_price(side, close, rules.slippage_bps)
            value = quantity * price
            fee = fill_fees(side, quantity, value, rules.fees)
            if side is SELL:
                self.cash += value - fee
                remaining = held - quantity
                if remaining > 0:
                    self.positions[item.symbol] = remaining
                else:
                    del self.positions[item.symbol]
            else:
                self.cash -= value
                self.positions[item.symbol] = held + quantity
            slippage += abs(price - close) * quantity
            fees += fee
            orders.append(
                Order(item.symbol, "SELL" if side is SELL else "BUY", quantity, price, value)
            )
        return _Filled(tuple(orders), Costs(slippage, fees))
