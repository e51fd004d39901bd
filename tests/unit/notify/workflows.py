"""Hand-built event lists of whole workflows, one per way a run can end, for the notify tests.

The account: $10,000.00 cash, SPY 100 @ $500.00 and TLT 400 @ $100.00 (PV $100,000.00), quoted
at those mids (TQQQ at 74.85); the target SPY 50 %, TQQQ 30 %, TLT 20 %: SPY holds, TLT sells
$20,000.00, TQQQ buys $30,000.00.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from shared.events import (
    AccountSnapshot,
    AllocationComparison,
    CompletionSummary,
    ConsolidatedPortfolio,
    DecisionStep,
    Event,
    ExecutionData,
    OpenOrder,
    OrderAttempt,
    OrderFilled,
    OrderRejected,
    OrderRequested,
    OrderResult,
    OrdersPreviewed,
    OrderSubmitted,
    PlanItem,
    PlanMetadata,
    PositionSnapshot,
    PreviewedOrder,
    RebalancePlan,
    RebalancePlanned,
    SignalGenerated,
    SkippedItem,
    StrategySignal,
    TradeExecuted,
    WorkflowCompleted,
    WorkflowConfiguration,
    WorkflowFailed,
    WorkflowStarted,
    client_order_id,
    plan_id,
    signal_fingerprint,
)
from shared.events.types import FailureStep
from shared.trading import Quote, QuoteSource, Side

SOURCES = {
    "signal_generation": "strategy",
    "portfolio_analysis": "portfolio",
    "trade_execution": "execution",
}
STARTED_AT = datetime(2026, 3, 2, 20, 45, 0, tzinfo=UTC)
TARGETS = {"SPY": Decimal("0.5"), "TQQQ": Decimal("0.3"), "TLT": Decimal("0.2")}


def quote(symbol: str, bid: str, ask: str) -> Quote:
    return Quote(
        symbol=symbol,
        bid=Decimal(bid),
        ask=Decimal(ask),
        bid_size=Decimal(100),
        ask_size=Decimal(100),
        as_of=STARTED_AT,
        source=QuoteSource.REST,
    )


class Workflow:
    """Events of one workflow id, each caused by the one before and a second later."""

    def __init__(self, workflow_id: str | None = None, *, live: bool = False) -> None:
        self.id = workflow_id or str(uuid.uuid4())
        self.live = live
        self.events: list[Event] = []

    def _envelope(self, source: str) -> dict[str, object]:
        previous = self.events[-1] if self.events else None
        return {
            "correlation_id": self.id,
            "causation_id": str(previous.event_id) if previous else None,
            "account_id": "default",
            "occurred_at": STARTED_AT + timedelta(seconds=len(self.events)),
            "source": source,
        }

    def add(self, event: Event) -> Event:
        self.events.append(event)
        return event

    def started(self, *, dry_run: bool = False, email: bool = False) -> Workflow:
        self.add(
            WorkflowStarted(
                **self._envelope("strategy"),
                requested_by="scheduler",
                configuration=WorkflowConfiguration(live_trading=self.live),
                trading_date=date(2026, 3, 2),
                force=False,
                idempotency_key=f"paper:default:{self.id}",
                workflow_type="dry_run" if dry_run else "trading",
                notify=email or not dry_run,
            )
        )
        return self

    def previewed(self) -> Workflow:
        """A dry run's end of execution: one BUY it would send, one it would skip."""
        self.add(
            OrdersPreviewed(
                **self._envelope("execution"),
                plan_id=plan_id(self.id),
                orders=(
                    PreviewedOrder(
                        symbol="TQQQ",
                        side=Side.BUY,
                        trade_amount=Decimal("29997.45"),
                        qty=Decimal("350.5"),
                        order_type="LIMIT",
                        limit_price=Decimal("85.58"),
                        estimated_notional=Decimal("29995.79"),
                        quote=quote("TQQQ", "85.57", "85.60"),
                        client_order_id=client_order_id(self.id, "TQQQ", Side.BUY, 1),
                    ),
                ),
                skipped=(
                    SkippedItem(symbol="TLT", action=Side.BUY, reason="quantity rounds to zero"),
                ),
            )
        )
        return self

    def signal(self, *, missing_score: bool = False, synthetic: bool = False) -> Workflow:
        """`missing_score` gives a filter candidate a NaN score (too little history); such an
        event only lives in memory: NaN does not survive the JSON round trip of the store.
        `synthetic`: the bars were the generated sample."""
        strategies = (
            StrategySignal(
                strategy="1-KMLM",
                weight=Decimal("0.6"),
                allocation={"SPY": Decimal("0.5"), "TQQQ": Decimal("0.5")},
                trace=(
                    DecisionStep(
                        kind="if",
                        span="1-KMLM:12:5",
                        condition="(> (rsi SPY 10) 80)",
                        branch="else",
                        values={"left": 71.25, "right": 80.0},
                    ),
                    DecisionStep(
                        kind="filter",
                        span="1-KMLM:20:7",
                        selected=("TQQQ", "SOXL") if missing_score else ("TQQQ",),
                        values={"TQQQ": 12.3456, "SOXL": float("nan") if missing_score else 9.5},
                    ),
                ),
            ),
            StrategySignal(
                strategy="2-Nuclear",
                weight=Decimal("0.4"),
                allocation={"SPY": Decimal("0.5"), "TLT": Decimal("0.5")},
                trace=(
                    DecisionStep(
                        kind="weight-inverse-volatility",
                        span="2-Nuclear:40:3",
                        values={"SPY": 0.5, "TLT": 0.5},
                    ),
                ),
            ),
        )
        self.add(
            SignalGenerated(
                **self._envelope("strategy"),
                strategies=strategies,
                consolidated_portfolio=ConsolidatedPortfolio(
                    target_allocations=TARGETS,
                    correlation_id=self.id,
                    timestamp=STARTED_AT,
                    strategy_count=2,
                    source_strategies=("1-KMLM", "2-Nuclear"),
                ),
                as_of=date(2026, 3, 2),
                bars_hash="sha256:ab12",
                synthetic_bars=synthetic,
                strategy_files_hash="sha256:cd34",
                signal_fingerprint=signal_fingerprint(TARGETS),
            )
        )
        return self

    def planned(self, *, trades: bool = True, small: bool = False) -> Workflow:
        def item(symbol: str, current: str, target: str) -> PlanItem:
            current_value, target_value = Decimal(current), Decimal(target)
            trade = target_value - current_value if trades else Decimal(0)
            action = "HOLD" if trade == 0 else ("BUY" if trade > 0 else "SELL")
            return PlanItem(
                symbol=symbol,
                current_weight=current_value / 100000,
                target_weight=target_value / 100000,
                weight_diff=(target_value - current_value) / 100000,
                target_value=target_value,
                current_value=current_value,
                trade_amount=trade,
                action=action,
                priority=3,
            )

        items = (
            item("SPY", "50000.00", "50000.00"),
            item("TLT", "40000.00", "20000.00"),
            item("TQQQ", "0", "30000.00"),
        )
        if small:
            # A target worth less than the minimum trade ($1,000.00): held, never bought.
            small_item = item("BIL", "0", "800.00")
            items += (small_item.model_copy(update={"action": "HOLD", "trade_amount": Decimal(0)}),)
        self.add(
            RebalancePlanned(
                **self._envelope("portfolio"),
                rebalance_plan=RebalancePlan(
                    correlation_id=self.id,
                    causation_id=str(self.events[-1].event_id),
                    timestamp=STARTED_AT,
                    plan_id=plan_id(self.id),
                    items=items,
                    total_portfolio_value=Decimal("100000.00"),
                    total_trade_value=sum((abs(i.trade_amount) for i in items), Decimal(0)),
                    metadata=PlanMetadata(
                        portfolio_value=Decimal("100000.00"),
                        cash_balance=Decimal("10000.00"),
                        position_count=2,
                        min_trade_threshold=Decimal("1000.00"),
                        strategy_name="consolidated",
                    ),
                ),
                allocation_comparison=AllocationComparison(
                    target_values={i.symbol: i.target_weight for i in items},
                    current_values={i.symbol: i.current_weight for i in items},
                    deltas={i.symbol: i.weight_diff for i in items},
                ),
                trades_required=trades,
                snapshot=AccountSnapshot(
                    cash=Decimal("10000.00"),
                    portfolio_value=Decimal("100000.00"),
                    positions=(
                        PositionSnapshot(
                            symbol="SPY",
                            qty=Decimal(100),
                            price=Decimal("500.00"),
                            market_value=Decimal("50000.00"),
                        ),
                        PositionSnapshot(
                            symbol="TLT",
                            qty=Decimal(400),
                            price=Decimal("100.00"),
                            market_value=Decimal("40000.00"),
                        ),
                    ),
                    quotes=tuple(
                        quote(symbol, bid, ask)
                        for symbol, bid, ask in (
                            ("SPY", "499.95", "500.05"),
                            ("TLT", "99.95", "100.05"),
                            ("TQQQ", "74.80", "74.90"),
                        )
                    ),
                    as_of=STARTED_AT,
                ),
                open_orders=(FOREIGN_ORDER,),
                signal_fingerprint=signal_fingerprint(TARGETS),
            )
        )
        return self

    def executed(self, *, buy_rejected: bool = False, no_trade: bool = False) -> Workflow:
        orders: tuple[OrderResult, ...] = ()
        if not no_trade:
            orders = (
                self._order("TLT", "SELL", "-20000.00", "200", "200", "100.05", "filled"),
                self._order(
                    "TQQQ",
                    "BUY",
                    "30000.00",
                    "400.5",
                    "0" if buy_rejected else "400.5",
                    None if buy_rejected else "74.90",
                    "rejected" if buy_rejected else "filled",
                ),
            )
        if buy_rejected:
            self.add(
                OrderRejected(
                    **self._envelope("execution"),
                    client_order_id=client_order_id(self.id, "TQQQ", "BUY", 1),
                    symbol="TQQQ",
                    side="BUY",
                    phase="BUY",
                    attempt=1,
                    reason="insufficient buying power",
                    broker_code="40310000",
                    retryable=False,
                )
            )
        succeeded = sum(1 for order in orders if order.success)
        self.add(
            TradeExecuted(
                **self._envelope("execution"),
                success=not buy_rejected,
                orders_placed=len(orders),
                orders_succeeded=succeeded,
                failure_reason="1 of 2 orders failed: TQQQ" if buy_rejected else None,
                failed_symbols=("TQQQ",) if buy_rejected else (),
                execution_data=ExecutionData(
                    plan_id=plan_id(self.id),
                    orders_placed=len(orders),
                    orders_succeeded=succeeded,
                    total_trade_value=Decimal(0) if no_trade else Decimal("50007.45"),
                    execution_timestamp=STARTED_AT,
                    success=not buy_rejected,
                    orders=orders,
                ),
                skipped=(
                    (SkippedItem(symbol="XLK", action="BUY", reason="quantity rounds to zero"),)
                    if not no_trade
                    else ()
                ),
                foreign_open_orders=(FOREIGN_ORDER,),
            )
        )
        return self

    def orders_in_flight(self) -> Workflow:
        """TLT sold in two broker orders (a partial fill, then a re-peg for the rest); the TQQQ
        buy accepted by the broker and still working when execution stopped."""

        def fields(symbol: str, side: Side, attempt: int) -> dict[str, object]:
            return {
                **self._envelope("execution"),
                "client_order_id": client_order_id(self.id, symbol, side, attempt),
                "symbol": symbol,
                "side": side,
                "phase": side,
                "attempt": attempt,
            }

        for attempt, qty, filled, price in ((1, "200", "120", "100.02"), (2, "80", "80", "100.00")):
            self.add(
                OrderRequested(
                    **fields("TLT", "SELL", attempt),
                    qty=Decimal(qty),
                    order_type="LIMIT",
                    limit_price=Decimal(price),
                    reason="initial" if attempt == 1 else "repeg",
                )
            )
            self.add(OrderSubmitted(**fields("TLT", "SELL", attempt), status="accepted"))
            self.add(
                OrderFilled(
                    **fields("TLT", "SELL", attempt),
                    filled_qty=Decimal(filled),
                    avg_fill_price=Decimal(price),
                    complete=attempt == 2,
                )
            )
        self.add(
            OrderRequested(
                **fields("TQQQ", "BUY", 1),
                qty=Decimal("400.5"),
                order_type="LIMIT",
                limit_price=Decimal("74.91"),
                reason="initial",
            )
        )
        self.add(OrderSubmitted(**fields("TQQQ", "BUY", 1), status="accepted"))
        return self

    def _order(
        self,
        symbol: str,
        side: Side,
        amount: str,
        asked: str,
        filled: str,
        price: str | None,
        status: str,
    ) -> OrderResult:
        success = status == "filled"
        return OrderResult(
            symbol=symbol,
            action=side,
            trade_amount=Decimal(amount),
            shares=Decimal(asked),
            price=Decimal(price) if price else None,
            order_id=f"broker-{symbol}",
            success=success,
            error_message=None if success else "insufficient buying power",
            timestamp=STARTED_AT,
            order_type="LIMIT",
            client_order_id=client_order_id(self.id, symbol, side, 1),
            requested_qty=Decimal(asked),
            filled_qty=Decimal(filled),
            avg_fill_price=Decimal(price) if price else None,
            final_status=status,
            attempts=(
                OrderAttempt(kind="limit", limit_price=Decimal("75.00"), status="canceled"),
                OrderAttempt(kind="repeg", limit_price=Decimal("75.02"), status=status),
            ),
        )

    def completed(self) -> Workflow:
        self.add(
            WorkflowCompleted(
                **self._envelope("execution"),
                workflow_duration_ms=5000,
                summary=CompletionSummary(
                    orders_placed=2, orders_succeeded=2, total_trade_value=Decimal("50007.45")
                ),
            )
        )
        return self

    def failed(
        self,
        step: FailureStep,
        reason: str,
        *,
        stalled: FailureStep | None = None,
    ) -> Workflow:
        self.add(
            WorkflowFailed(
                **self._envelope("strategy" if stalled else SOURCES[step]),
                failure_reason=reason,
                failure_step=step,
                deadline_exceeded=stalled is not None,
                stalled_step=stalled,
            )
        )
        return self


FOREIGN_ORDER = OpenOrder(
    broker_order_id="b-manual-7",
    client_order_id="my-manual-order",
    symbol="AAPL",
    side="BUY",
    qty=Decimal(3),
    status="new",
    own=False,
)


def success() -> Workflow:
    return Workflow().started().signal().planned().executed().completed()


def dry_run(*, email: bool = False) -> Workflow:
    return Workflow().started(dry_run=True, email=email).signal().planned().previewed().completed()


def no_trade() -> Workflow:
    return Workflow().started().signal().planned(trades=False).executed(no_trade=True).completed()


def partial_failure() -> Workflow:
    return (
        Workflow()
        .started()
        .signal()
        .planned()
        .executed(buy_rejected=True)
        .failed("trade_execution", "1 of 2 orders failed: TQQQ")
    )


def strategy_failure() -> Workflow:
    return (
        Workflow()
        .started()
        .failed(
            "signal_generation",
            "bars are older than the last completed session 2026-02-27: SPY; refresh them",
        )
    )


def execution_stalled() -> Workflow:
    return (
        Workflow()
        .started()
        .signal()
        .planned()
        .orders_in_flight()
        .failed(
            "trade_execution",
            "no event for 600 s after OrderSubmitted",
            stalled="trade_execution",
        )
    )


def deadline_failure() -> Workflow:
    return (
        Workflow()
        .started()
        .signal()
        .planned()
        .failed(
            "trade_execution",
            "no event for 600 s after RebalancePlanned",
            stalled="trade_execution",
        )
    )
