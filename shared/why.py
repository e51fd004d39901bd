"""Why was a symbol bought, sold or held: walk a workflow's events from the symbol's orders back
through the plan item to the strategies whose decisions put it in (or left it out of) the
target, with the indicator values that decided — a pure fold over the recorded events."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pydantic_core import to_jsonable_python

from shared.decimal_places import view
from shared.events import Event
from shared.events.orders import OrderEvent
from shared.events.plans import RebalancePlanned
from shared.events.signals import SignalGenerated
from shared.events.trades import TradeExecuted


def explain(events: Sequence[Event], symbol: str) -> dict[str, Any]:
    """The answer for `symbol` (upper-cased); `action` is BUY, SELL, HOLD or NOT_PLANNED. JSON
    ready, numbers shown to their places (`shared.decimal_places`)."""
    symbol = symbol.strip().upper()
    by_id = {str(event.event_id): event for event in events}
    signal = next((e for e in events if isinstance(e, SignalGenerated)), None)
    plan = next((e for e in events if isinstance(e, RebalancePlanned)), None)
    trades = next((e for e in events if isinstance(e, TradeExecuted)), None)
    item = next((i for i in plan.items if i.symbol == symbol), None) if plan else None
    order_events = [e for e in events if isinstance(e, OrderEvent) and e.symbol == symbol]
    results = [
        result.model_dump()
        for result in (trades.execution_data.orders if trades else ())
        if result.symbol == symbol
    ]
    answer: dict[str, Any] = {
        "workflow_id": events[0].correlation_id if events else None,
        "symbol": symbol,
        "action": item.action if item else "NOT_PLANNED",
        "plan_item": item.model_dump() if item else None,
        "orders": results,
        "order_events": [
            {
                "event_type": e.event_type,
                "client_order_id": e.client_order_id,
                "side": e.side,
                "attempt": e.attempt,
                "event_id": str(e.event_id),
            }
            for e in order_events
        ],
        "target_weight": None,
        "strategies": [],
        "causation": _chain(order_events[-1] if order_events else plan, by_id),
    }
    if signal is not None:
        target = signal.consolidated_portfolio.target_allocations.get(symbol)
        answer["target_weight"] = target
        answer["strategies"] = [
            {
                "strategy": strategy.strategy,
                "file_weight": strategy.weight,
                "allocation_weight": strategy.allocation[symbol],
                "contribution": strategy.weight * strategy.allocation[symbol],
                "decision_path": [step.model_dump(mode="json") for step in strategy.trace],
                "trace_truncated": strategy.trace_truncated,
            }
            for strategy in signal.strategies
            if strategy.allocation.get(symbol, Decimal(0)) > 0
        ]
    answer["summary"] = _summary(answer)
    shown: dict[str, Any] = to_jsonable_python(view(answer))
    return shown


def _chain(start: Event | None, by_id: dict[str, Event]) -> list[dict[str, str]]:
    """Causation links from `start` back to the workflow's start."""
    chain: list[dict[str, str]] = []
    current = start
    while current is not None and len(chain) < len(by_id) + 1:
        chain.append({"event_id": str(current.event_id), "event_type": current.event_type})
        current = by_id.get(current.causation_id or "")
    return chain


def _summary(answer: dict[str, Any]) -> str:
    symbol, action = answer["symbol"], answer["action"]
    holders = ", ".join(
        f"{s['strategy']} ({float(s['allocation_weight']):.1%} of its allocation)"
        for s in answer["strategies"]
    )
    if action == "NOT_PLANNED":
        return f"{symbol} was neither targeted nor held in this workflow"
    if holders:
        return (
            f"{action} {symbol}: target weight {float(answer['target_weight']):.2%} "
            f"because {holders} selected it"
        )
    return f"{action} {symbol}: held but in no strategy's allocation, so the plan sells it"
