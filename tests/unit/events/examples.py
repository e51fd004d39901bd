"""One valid instance of every event type, as other tests' starting points."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

from shared.events import (
    AccountSnapshot,
    AllocationComparison,
    CompletionSummary,
    ConsolidatedPortfolio,
    DecisionStep,
    Event,
    ExecutionData,
    NotificationSent,
    OpenOrder,
    OrderAttempt,
    OrderCancelled,
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
    SignalComputed,
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
    signal_content_hash,
    signal_fingerprint,
)
from shared.events.control import (
    EVERY_ACCOUNT,
    HaltOrdersCancelled,
    TradingHalted,
    TradingResumed,
)
from shared.trading import Quote, QuoteSource

WORKFLOW_ID = "0b9f2a52-3c55-4d8e-9a43-4a3f8f1c2d10"
AT = datetime(2026, 3, 2, 20, 46, 5, tzinfo=UTC)
TARGETS = {"SPY": Decimal("0.6"), "TQQQ": Decimal("0.4")}


def envelope(source: str = "execution", **fields: object) -> dict[str, object]:
    return {
        "correlation_id": WORKFLOW_ID,
        "causation_id": "6a1d8c1e-7f0b-4e44-8a9f-0c1d2e3f4a5b",
        "account_id": "default",
        "occurred_at": AT,
        "source": source,
        **fields,
    }


def quote(symbol: str = "SPY") -> Quote:
    return Quote(
        symbol=symbol,
        bid=Decimal("501.10"),
        ask=Decimal("501.14"),
        bid_size=Decimal(300),
        ask_size=Decimal(200),
        as_of=AT,
        source=QuoteSource.REST,
    )


def workflow_started() -> WorkflowStarted:
    return WorkflowStarted(
        **envelope("strategy", causation_id=None),
        requested_by="scheduler",
        configuration=WorkflowConfiguration(live_trading=False),
        trading_date=date(2026, 3, 2),
        force=False,
        idempotency_key="paper:default:2026-03-02",
    )


def signal_generated() -> SignalGenerated:
    return SignalGenerated(
        **envelope("strategy"),
        strategies=(
            StrategySignal(
                strategy="1-KMLM",
                weight=Decimal("1"),
                allocation=TARGETS,
                trace=(
                    DecisionStep(
                        kind="if",
                        span="1-KMLM.clj:12:5",
                        condition="(> (rsi SPY 10) 80)",
                        branch="else",
                        values={"rsi(SPY,10)": 71.25},
                    ),
                ),
            ),
        ),
        consolidated_portfolio=ConsolidatedPortfolio(
            target_allocations=TARGETS,
            correlation_id=WORKFLOW_ID,
            timestamp=AT,
            strategy_count=1,
            source_strategies=("1-KMLM",),
        ),
        as_of=date(2026, 3, 2),
        bars_hash="sha256:ab12",
        synthetic_bars=False,
        live_bars={"SPY": Decimal("501.12")},
        strategy_files_hash="sha256:cd34",
        signal_fingerprint=signal_fingerprint(TARGETS),
    )


def signal_computed() -> SignalComputed:
    """`signal_generated()`'s decision as the shared signal it was copied from."""
    copied = signal_generated()
    signal_id = UUID("3f2a1c4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b")
    fields = copied.model_dump(
        exclude={"event_id", "event_type", "schema_version", "shared_signal_id", "content_hash"}
    )
    return SignalComputed(
        **{**fields, "event_id": signal_id, "correlation_id": str(signal_id)},
        strategy_set_hash="5e" * 32,
        window="2026-03-02T20:45:00Z",
        bar_store_hash="b5" * 32,
        content_hash=signal_content_hash(copied),
    )


def rebalance_planned() -> RebalancePlanned:
    return RebalancePlanned(
        **envelope("portfolio"),
        rebalance_plan=RebalancePlan(
            correlation_id=WORKFLOW_ID,
            causation_id="6a1d8c1e-7f0b-4e44-8a9f-0c1d2e3f4a5b",
            timestamp=AT,
            plan_id=plan_id(WORKFLOW_ID),
            items=(
                PlanItem(
                    symbol="SPY",
                    current_weight=Decimal("0.2"),
                    target_weight=Decimal("0.6"),
                    weight_diff=Decimal("0.4"),
                    target_value=Decimal("6000.00"),
                    current_value=Decimal("2000.00"),
                    trade_amount=Decimal("4000.00"),
                    action="BUY",
                    priority=1,
                ),
            ),
            total_portfolio_value=Decimal("10000.00"),
            total_trade_value=Decimal("4000.00"),
            metadata=PlanMetadata(
                portfolio_value=Decimal("10000.00"),
                cash_balance=Decimal("8000.00"),
                position_count=1,
                min_trade_threshold=Decimal("100.00"),
                strategy_name="consolidated",
            ),
        ),
        allocation_comparison=AllocationComparison(
            target_values={"SPY": Decimal("0.6")},
            current_values={"SPY": Decimal("0.2")},
            deltas={"SPY": Decimal("0.4")},
        ),
        trades_required=True,
        snapshot=AccountSnapshot(
            cash=Decimal("8000.00"),
            portfolio_value=Decimal("10000.00"),
            positions=(
                PositionSnapshot(
                    symbol="SPY",
                    qty=Decimal("3.99"),
                    price=Decimal("501.12"),
                    market_value=Decimal("1999.47"),
                ),
            ),
            quotes=(quote(),),
            as_of=AT,
        ),
        open_orders=(
            OpenOrder(
                broker_order_id="b-1",
                client_order_id="manual-1",
                symbol="AAPL",
                side="BUY",
                qty=Decimal(1),
                status="new",
                own=False,
            ),
        ),
        signal_fingerprint=signal_fingerprint(TARGETS),
    )


def order_fields() -> dict[str, object]:
    return {
        **envelope(),
        "client_order_id": client_order_id(WORKFLOW_ID, "SPY", "BUY", 1),
        "symbol": "SPY",
        "side": "BUY",
        "phase": "BUY",
        "attempt": 1,
    }


def order_events() -> list[Event]:
    return [
        OrderRequested(
            **order_fields(),
            qty=Decimal("7.982"),
            order_type="LIMIT",
            limit_price=Decimal("501.13"),
            reason="initial",
            quote=quote(),
        ),
        OrderSubmitted(**order_fields(), broker_order_id="b-9", status="accepted"),
        OrderFilled(
            **order_fields(),
            broker_order_id="b-9",
            filled_qty=Decimal("7.982"),
            avg_fill_price=Decimal("501.13"),
            complete=True,
        ),
        OrderCancelled(
            **order_fields(), broker_order_id="b-9", filled_qty=Decimal(0), reason="repeg"
        ),
        OrderRejected(
            **order_fields(), reason="insufficient buying power", broker_code="403", retryable=False
        ),
    ]


def trade_executed() -> TradeExecuted:
    return TradeExecuted(
        **envelope(),
        success=True,
        orders_placed=1,
        orders_succeeded=1,
        execution_data=ExecutionData(
            plan_id=plan_id(WORKFLOW_ID),
            orders_placed=1,
            orders_succeeded=1,
            total_trade_value=Decimal("4000.02"),
            execution_timestamp=AT,
            success=True,
            orders=(
                OrderResult(
                    symbol="SPY",
                    action="BUY",
                    trade_amount=Decimal("4000.00"),
                    shares=Decimal("7.982"),
                    price=Decimal("501.13"),
                    order_id="b-9",
                    success=True,
                    timestamp=AT,
                    order_type="LIMIT",
                    filled_at=AT,
                    client_order_id=client_order_id(WORKFLOW_ID, "SPY", "BUY", 1),
                    requested_qty=Decimal("7.982"),
                    filled_qty=Decimal("7.982"),
                    avg_fill_price=Decimal("501.13"),
                    final_status="filled",
                    attempts=(
                        OrderAttempt(
                            kind="limit",
                            limit_price=Decimal("501.13"),
                            broker_order_id="b-9",
                            status="filled",
                        ),
                    ),
                ),
            ),
        ),
    )


def workflow_completed() -> WorkflowCompleted:
    return WorkflowCompleted(
        **envelope(),
        workflow_duration_ms=65_000,
        summary=CompletionSummary(
            orders_placed=1,
            orders_succeeded=1,
            total_trade_value=Decimal("4000.02"),
            execution_plan_id=plan_id(WORKFLOW_ID),
        ),
    )


def workflow_failed() -> WorkflowFailed:
    return WorkflowFailed(
        **envelope("strategy"),
        failure_reason="no event for 600 s after RebalancePlanned",
        failure_step="trade_execution",
        deadline_exceeded=True,
        stalled_step="trade_execution",
    )


def notification_sent() -> NotificationSent:
    return NotificationSent(**envelope("notify"), channel="email", status="sent", attempts=1)


def control_events() -> list[Event]:
    """A halt of every account with one liquidation, execution's cancel report, a resume."""
    halted = TradingHalted(
        **envelope("strategy", account_id=EVERY_ACCOUNT, causation_id=None),
        reason="drill",
        requested_by="api",
        accounts=("default",),
        liquidations={"default": WORKFLOW_ID},
    )
    return [
        halted,
        HaltOrdersCancelled(**envelope(), cancelled=("alc:0123",), failed=()),
        TradingResumed(**envelope("strategy", causation_id=None), reason="ok", requested_by="cli"),
    ]


def orders_previewed() -> OrdersPreviewed:
    return OrdersPreviewed(
        **envelope(),
        plan_id=plan_id(WORKFLOW_ID),
        orders=(
            PreviewedOrder(
                symbol="SPY",
                side="BUY",
                trade_amount=Decimal("4000.00"),
                qty=Decimal("7.982"),
                order_type="LIMIT",
                limit_price=Decimal("501.13"),
                estimated_notional=Decimal("4000.02"),
                quote=quote(),
                client_order_id=client_order_id(WORKFLOW_ID, "SPY", "BUY", 1),
            ),
        ),
        skipped=(SkippedItem(symbol="TQQQ", action="BUY", reason="quantity rounds to zero"),),
    )


def every_event() -> list[Event]:
    return [
        workflow_started(),
        signal_generated(),
        rebalance_planned(),
        *order_events(),
        trade_executed(),
        orders_previewed(),
        workflow_completed(),
        workflow_failed(),
        notification_sent(),
        *control_events(),
        signal_computed(),
    ]


def order_filled(
    qty: Decimal = Decimal("1"), price: Decimal = Decimal("1"), correlation_id: str = WORKFLOW_ID
) -> OrderFilled:
    return OrderFilled(
        **{**order_fields(), "correlation_id": correlation_id, "causation_id": None},
        filled_qty=qty,
        avg_fill_price=price,
        complete=True,
    )
