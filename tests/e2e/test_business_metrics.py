"""A completed workflow moves every business series on notify's /metrics
(docs/operations.md, Metrics): the embedded system runs one forced workflow on the simulated
broker, and the series notify serves are compared with what the workflow's events say."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.embedded import EmbeddedSystem, prepare_data
from services.strategy.trigger import start_workflow
from shared import market_clock
from shared.events import Event, RebalancePlanned, TradeExecuted, WorkflowCompleted
from shared.marketdata.barstore import BarStore
from shared.service.runtime import ServiceRuntime
from shared.settings import load_settings
from tests.eventually import eventually

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(runtime: ServiceRuntime) -> Samples:
    """What GET /metrics answers: the runtime's registry in Prometheus text, parsed back."""
    text = generate_latest(runtime.metrics.registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_a_completed_workflow_moves_every_business_series(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", workflow_deadline_s=600)
    await prepare_data(settings, lambda line: None)
    system = EmbeddedSystem(settings)
    notify = next(runtime for runtime in system.runtimes if runtime.name == "notify")
    await system.start()
    try:
        before = scrape(notify)
        now = market_clock.market_now(settings, BarStore(settings.data_dir).last_session())
        started = await start_workflow(
            system.store, settings, now=now, force=True, account_id="default", requested_by="test"
        )
        system.relay.wake()

        def counted() -> bool:
            return bool(
                value(
                    scrape(notify),
                    "alchemiser_workflows_total",
                    account="default",
                    status="completed",
                )
            )

        await eventually(counted, timeout_s=120, message="notify counted the workflow")
        after = scrape(notify)
        events: list[Event] = [
            r.event for r in await system.store.read_correlation(started.workflow_id)
        ]
    finally:
        await system.stop()

    for name in ("alchemiser_workflows_total", "alchemiser_orders_total"):
        assert not any(key[0] == name for key in before), "nothing counted before the run"
    completed = next(e for e in events if isinstance(e, WorkflowCompleted))
    executed = next(e for e in events if isinstance(e, TradeExecuted))
    plan = next(e for e in events if isinstance(e, RebalancePlanned))
    orders = executed.execution_data.orders
    assert orders, "the first run on a fresh account buys its targets"

    assert value(after, "alchemiser_workflows_total", account="default", status="completed") == 1
    assert value(after, "alchemiser_workflows_total", account="default", status="failed") is None
    for side in ("BUY", "SELL"):
        for outcome in {order.final_status for order in orders}:
            expected = sum(1 for o in orders if o.action == side and o.final_status == outcome)
            assert (
                value(
                    after, "alchemiser_orders_total", account="default", side=side, outcome=outcome
                )
                or 0
            ) == expected
    filled = [o for o in orders if o.avg_fill_price is not None and o.filled_qty > 0]
    traded = sum((o.filled_qty * o.avg_fill_price for o in filled if o.avg_fill_price), Decimal(0))
    assert value(
        after, "alchemiser_traded_value_dollars_total", account="default", side="BUY"
    ) == pytest.approx(float(traded))

    mids = {quote.symbol: quote.mid() for quote in plan.snapshot.quotes}
    costs = {  # (dollars, basis points) per filled order, positive when it cost
        o.symbol: ((o.avg_fill_price - mid) * o.filled_qty, (o.avg_fill_price - mid) / mid * 10_000)
        for o in filled
        if o.avg_fill_price is not None and (mid := mids.get(o.symbol))
    }
    assert len(costs) == len(filled), "every bought symbol had a planning price"
    labels = {"account": "default", "side": "BUY"}
    assert value(after, "alchemiser_slippage_dollars", **labels) == pytest.approx(
        float(sum(dollars for dollars, _ in costs.values()))
    )
    assert value(after, "alchemiser_order_slippage_bps_count", **labels) == len(costs)
    assert value(after, "alchemiser_order_slippage_bps_bucket", **labels, le="0.0") == sum(
        1 for _, bps in costs.values() if bps <= 0
    )
    assert value(after, "alchemiser_order_slippage_bps_bucket", **labels, le="-50.0") == sum(
        1 for _, bps in costs.values() if bps <= -50
    )

    portfolio = value(after, "alchemiser_portfolio_value_dollars", account="default")
    starting = float(plan.snapshot.portfolio_value)
    assert portfolio is not None and portfolio == pytest.approx(starting, rel=0.01)
    assert value(
        after, "alchemiser_last_successful_run_timestamp_seconds", account="default"
    ) == pytest.approx(completed.occurred_at.timestamp())
