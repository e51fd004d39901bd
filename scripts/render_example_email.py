"""Render the example trading report: `docs/email-example.html` and a screenshot of it,
`docs/email-example.png` (`make docs`).

The workflow is made up but shaped like a real run of the bundled production configuration:
four strategies with their decision traces, a plan that sells a position no strategy wants,
fills at prices near the quotes, one partial fill, and an order placed by hand at the broker
that the run left alone. The HTML comes from the notify service's own rendering path.

The screenshot needs Debian's Chromium (`apt-get install -y chromium`); without it the HTML is
still written and the script says how to get the PNG.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

from services.notify.rendering import render_workflow
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
    OrderResult,
    PlanItem,
    PlanMetadata,
    PositionSnapshot,
    RebalancePlan,
    RebalancePlanned,
    SignalGenerated,
    StrategySignal,
    TradeExecuted,
    WorkflowCompleted,
    WorkflowConfiguration,
    WorkflowStarted,
    client_order_id,
    plan_id,
    signal_fingerprint,
)
from shared.trading import Quote, QuoteSource, Side

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
WORKFLOW_ID = "7c1e4b1a-5d2f-4c7e-9a61-2f8e0d9b3a44"
STARTED = datetime(2026, 3, 2, 20, 45, 2, tzinfo=UTC)
CENT = Decimal("0.01")

CASH = Decimal("4182.37")
HELD = {  # symbol: (qty, price)
    "TECL": (Decimal(410), Decimal("92.18")),
    "TQQQ": (Decimal(620), Decimal("84.27")),
    "UVXY": (Decimal(900), Decimal("21.06")),
    "BITX": (Decimal(350), Decimal("48.90")),
    "SMR": (Decimal(600), Decimal("29.77")),
}
QUOTES = {"BWXT": Decimal("118.40"), "LEU": Decimal("243.10")} | {
    symbol: price for symbol, (_, price) in HELD.items()
}
FILL_PRICES = {
    "UVXY": Decimal("21.04"),
    "TQQQ": Decimal("84.22"),
    "SMR": Decimal("29.74"),
    "BITX": Decimal("48.85"),
    "TECL": Decimal("92.31"),
    "BWXT": Decimal("118.52"),
    "LEU": Decimal("243.35"),
}
PARTIAL = {"TECL": Decimal(200)}
"""Symbols whose order ended partially filled, with the quantity filled."""


def rsi(symbol: str, window: int) -> str:
    return f'(rsi "{symbol}" {{:window {window}}})'


def if_step(span: str, condition: str, left: float, right: float, branch: str) -> DecisionStep:
    return DecisionStep(
        kind="if",
        span=span,
        condition=condition,
        branch=branch,
        values={"left": left, "right": right},
    )


STRATEGIES = (
    StrategySignal(
        strategy="1-KMLM",
        weight=Decimal("0.4"),
        allocation={"TECL": Decimal(1)},
        trace=(
            if_step("1-KMLM:9:5", f"(> {rsi('XLK', 10)} {rsi('KMLM', 10)})", 58.41, 47.12, "then"),
            if_step("1-KMLM:11:9", f"(> {rsi('XLK', 10)} 79)", 58.41, 79.0, "else"),
            DecisionStep(
                kind="filter",
                span="1-KMLM:14:11",
                selected=("TECL",),
                values={"TECL": 61.22},
            ),
        ),
    ),
    StrategySignal(
        strategy="2-Nuclear",
        weight=Decimal("0.25"),
        allocation={"BWXT": Decimal("0.41"), "LEU": Decimal("0.31"), "SMR": Decimal("0.28")},
        trace=(
            if_step(
                "2-Nuclear:6:5",
                '(> (current-price "SPY") (moving-average-price "SPY" {:window 200}))',
                589.41,
                551.07,
                "then",
            ),
            DecisionStep(
                kind="filter",
                span="2-Nuclear:8:9",
                selected=("BWXT", "LEU", "SMR"),
                values={"BWXT": 0.2211, "LEU": 0.1874, "SMR": 0.1542},
            ),
            DecisionStep(
                kind="weight-inverse-volatility",
                span="2-Nuclear:7:7",
                values={"BWXT": 0.41, "LEU": 0.31, "SMR": 0.28},
            ),
        ),
    ),
    StrategySignal(
        strategy="5-Coin",
        weight=Decimal("0.1"),
        allocation={"BITX": Decimal(1)},
        trace=(
            if_step("5-Coin:5:5", f"(> {rsi('BIL', 15)} {rsi('IEF', 15)})", 41.87, 52.3, "else"),
        ),
    ),
    StrategySignal(
        strategy="6-TQQQ-FLT",
        weight=Decimal("0.25"),
        allocation={"TQQQ": Decimal(1)},
        trace=(
            if_step("6-TQQQ-FLT:4:5", f"(> {rsi('QQQ', 10)} 79)", 66.02, 79.0, "else"),
            if_step(
                "6-TQQQ-FLT:7:9",
                '(< (cumulative-return "TQQQ" {:window 6}) -12)',
                -3.41,
                -12.0,
                "else",
            ),
        ),
    ),
)


class Recorder:
    """Gives each event the workflow's envelope, caused by the previous one, a few seconds on."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def envelope(self, source: str, seconds: float) -> dict[str, object]:
        previous = self.events[-1] if self.events else None
        return {
            "event_id": uuid.uuid5(uuid.NAMESPACE_URL, f"{WORKFLOW_ID}/{len(self.events)}"),
            "correlation_id": WORKFLOW_ID,
            "causation_id": str(previous.event_id) if previous else None,
            "account_id": "default",
            "occurred_at": STARTED + timedelta(seconds=seconds),
            "source": source,
        }

    def add(self, event: Event) -> None:
        self.events.append(event)


def target_weights() -> dict[str, Decimal]:
    weights: dict[str, Decimal] = {}
    for strategy in STRATEGIES:
        for symbol, weight in strategy.allocation.items():
            weights[symbol] = weights.get(symbol, Decimal(0)) + strategy.weight * weight
    return weights


def plan_items(portfolio_value: Decimal, targets: dict[str, Decimal]) -> tuple[PlanItem, ...]:
    items = []
    for symbol in sorted(set(targets) | set(HELD)):
        qty, price = HELD.get(symbol, (Decimal(0), QUOTES[symbol]))
        current = (qty * price).quantize(CENT)
        target_weight = targets.get(symbol, Decimal(0))
        target = (portfolio_value * target_weight).quantize(CENT)
        trade = target - current
        items.append(
            PlanItem(
                symbol=symbol,
                current_weight=(current / portfolio_value).quantize(Decimal("0.000001")),
                target_weight=target_weight,
                weight_diff=((target - current) / portfolio_value).quantize(Decimal("0.000001")),
                target_value=target,
                current_value=current,
                trade_amount=trade,
                action="BUY" if trade > 0 else "SELL",
                priority=1 if trade < 0 else 2,
            )
        )
    return tuple(items)


def order_result(item: PlanItem) -> OrderResult:
    side = Side(item.action)
    price = FILL_PRICES[item.symbol]
    held = HELD.get(item.symbol, (Decimal(0), Decimal(0)))[0]
    asked = (
        held
        if item.target_value == 0
        else (abs(item.trade_amount) / QUOTES[item.symbol]).quantize(CENT, ROUND_DOWN)
    )
    filled = PARTIAL.get(item.symbol, asked)
    status = "partially_filled" if filled < asked else "filled"
    limit = QUOTES[item.symbol] + (CENT if side == "BUY" else -CENT)
    if item.symbol in ("UVXY", "TECL"):
        attempts = [
            OrderAttempt(
                kind="limit",
                limit_price=limit,
                broker_order_id=f"{item.symbol}-1",
                status="canceled",
            ),
            OrderAttempt(
                kind="repeg",
                limit_price=price,
                broker_order_id=f"{item.symbol}-2",
                status=status,
            ),
        ]
    else:
        attempts = [
            OrderAttempt(
                kind="limit", limit_price=limit, broker_order_id=f"{item.symbol}-1", status=status
            )
        ]
    return OrderResult(
        symbol=item.symbol,
        action=side,
        trade_amount=item.trade_amount,
        shares=asked,
        price=price,
        order_id=attempts[-1].broker_order_id,
        success=True,
        timestamp=STARTED + timedelta(seconds=40),
        order_type="LIMIT",
        filled_at=STARTED + timedelta(seconds=40),
        client_order_id=client_order_id(WORKFLOW_ID, item.symbol, side, len(attempts)),
        requested_qty=asked,
        filled_qty=filled,
        avg_fill_price=price,
        final_status=status,
        attempts=tuple(attempts),
    )


def example_events() -> list[Event]:
    recorder = Recorder()
    targets = target_weights()
    fingerprint = signal_fingerprint(targets)
    positions = tuple(
        PositionSnapshot(symbol=s, qty=q, price=p, market_value=(q * p).quantize(CENT))
        for s, (q, p) in sorted(HELD.items())
    )
    portfolio_value = CASH + sum((p.market_value for p in positions), Decimal(0))
    recorder.add(
        WorkflowStarted(
            **recorder.envelope("strategy", 0),
            requested_by="scheduler",
            configuration=WorkflowConfiguration(live_trading=False),
            trading_date=date(2026, 3, 2),
            force=False,
            idempotency_key="paper:default:2026-03-02",
        )
    )
    recorder.add(
        SignalGenerated(
            **recorder.envelope("strategy", 3.2),
            strategies=STRATEGIES,
            consolidated_portfolio=ConsolidatedPortfolio(
                target_allocations=targets,
                correlation_id=WORKFLOW_ID,
                timestamp=STARTED + timedelta(seconds=3),
                strategy_count=len(STRATEGIES),
                source_strategies=tuple(s.strategy for s in STRATEGIES),
            ),
            as_of=date(2026, 3, 2),
            bars_hash="sha256:5f0c9e",
            live_bars={symbol: price for symbol, price in QUOTES.items()},
            strategy_files_hash="sha256:a41d07",
            signal_fingerprint=fingerprint,
        )
    )
    items = plan_items(portfolio_value, targets)
    foreign = OpenOrder(
        broker_order_id="61e2a0f4-9b1c-4e55-8d0e-3c7f5a2b9d10",
        client_order_id="web-3f9a2c",
        symbol="GLD",
        side="BUY",
        qty=Decimal(10),
        status="new",
        own=False,
    )
    recorder.add(
        RebalancePlanned(
            **recorder.envelope("portfolio", 5.8),
            rebalance_plan=RebalancePlan(
                correlation_id=WORKFLOW_ID,
                causation_id=str(recorder.events[-1].event_id),
                timestamp=STARTED + timedelta(seconds=5),
                plan_id=plan_id(WORKFLOW_ID),
                items=items,
                total_portfolio_value=portfolio_value,
                total_trade_value=sum((abs(i.trade_amount) for i in items), Decimal(0)),
                metadata=PlanMetadata(
                    portfolio_value=portfolio_value,
                    cash_balance=CASH,
                    position_count=len(positions),
                    min_trade_threshold=(portfolio_value / 100).quantize(CENT),
                    strategy_name="consolidated",
                ),
            ),
            allocation_comparison=AllocationComparison(
                target_values={i.symbol: i.target_weight for i in items},
                current_values={i.symbol: i.current_weight for i in items},
                deltas={i.symbol: i.weight_diff for i in items},
            ),
            trades_required=True,
            snapshot=AccountSnapshot(
                cash=CASH,
                portfolio_value=portfolio_value,
                buying_power=CASH,
                positions=positions,
                quotes=tuple(
                    Quote(
                        symbol=symbol,
                        bid=price - CENT,
                        ask=price + CENT,
                        bid_size=Decimal(200),
                        ask_size=Decimal(300),
                        as_of=STARTED + timedelta(seconds=5),
                        source=QuoteSource.REST,
                    )
                    for symbol, price in sorted(QUOTES.items())
                ),
                as_of=STARTED + timedelta(seconds=5),
            ),
            open_orders=(foreign,),
            signal_fingerprint=fingerprint,
        )
    )
    sells = [order_result(i) for i in items if i.action == "SELL"]
    buys = [order_result(i) for i in items if i.action == "BUY"]
    orders = tuple(sells + buys)
    traded = sum((o.filled_qty * (o.avg_fill_price or 0) for o in orders), Decimal(0)).quantize(
        CENT
    )
    recorder.add(
        TradeExecuted(
            **recorder.envelope("execution", 61.4),
            success=True,
            orders_placed=len(orders),
            orders_succeeded=len(orders),
            execution_data=ExecutionData(
                plan_id=plan_id(WORKFLOW_ID),
                orders_placed=len(orders),
                orders_succeeded=len(orders),
                total_trade_value=traded,
                execution_timestamp=STARTED + timedelta(seconds=61),
                success=True,
                orders=orders,
            ),
            foreign_open_orders=(foreign,),
        )
    )
    recorder.add(
        WorkflowCompleted(
            **recorder.envelope("execution", 61.5),
            workflow_duration_ms=61_500,
            summary=CompletionSummary(
                orders_placed=len(orders),
                orders_succeeded=len(orders),
                total_trade_value=traded,
                execution_plan_id=plan_id(WORKFLOW_ID),
            ),
        )
    )
    return recorder.events


def screenshot(html_path: Path, png_path: Path, width: int, height: int) -> None:
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--screenshot={png_path}",
            f"--window-size={width},{height}",
            html_path.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder to write to")
    parser.add_argument("--width", type=int, default=680, help="screenshot width in px")
    parser.add_argument("--height", type=int, default=2330, help="screenshot height in px")
    arguments = parser.parse_args()
    report = render_workflow(example_events(), neutral=False, default_live=False)
    if report.fallback:
        print("the example report fell back to the minimal report; see the log", file=sys.stderr)
        return 1
    arguments.out.mkdir(parents=True, exist_ok=True)
    html_path = arguments.out / "email-example.html"
    png_path = arguments.out / "email-example.png"
    html_path.write_text(report.html, encoding="utf-8")
    print(f"wrote {html_path} ({report.subject})")
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        print(
            f"no screenshot: {CHROMIUM} is missing; install it with "
            "`apt-get install -y chromium` and run `make docs` again",
            file=sys.stderr,
        )
        return 1
    screenshot(html_path, png_path, arguments.width, arguments.height)
    print(f"wrote {png_path} ({arguments.width}x{arguments.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
