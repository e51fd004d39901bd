"""Exactly once across a SIGKILL (docs/trading-rules.md, Restart reconciliation): the execution
service runs as its own process (`alchemiser serve execution`) on the real PostgreSQL and RabbitMQ,
is killed at the worst moments, restarted, and must leave each order once at the broker and one
`TradeExecuted`.

(a) killed right after the broker accepted an order and before the commit that records it
    (the `after_submit` fault point; the process is started through `tests.chaos.kill_at`,
    which installs an injector that SIGKILLs it there);
(b) killed from outside while a working limit order waits on its re-peg timer (the simulated
    market is closed, so nothing fills and the chain runs to its leftover cancel);
(c) against the strict loopback Alpaca, killed from outside while the cancel of a BUY stays
    `pending_cancel` (20 s of Alpaca's clock) before a fill wins it: the restarted service keeps
    tracking the order, sends nothing more, and the position ends at the plan.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.execution.steps import AFTER_SUBMIT
from shared.events import OrderCancelled, OrderFilled, OrderRequested
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.marketdata.sample import ensure_sample
from shared.messaging.consumer import stream_of
from tests.eventually import eventually
from tests.fakes.alpaca import (
    AlpacaLoopback,
    CancelEnd,
    CancelRule,
    FillMode,
    FillRule,
    running_alpaca,
)
from tests.fakes.clock import ControlledClock
from tests.integration.execution.world import CLOSED_SIM_NOW, plan_event
from tests.servers import delete_bus_namespace, unique_bus_namespace

pytestmark = pytest.mark.chaos

ALCHEMISER = [sys.executable, "-m", "services.cli"]
KILL_AT = [sys.executable, "-m", "tests.chaos.kill_at"]
LOOPBACK_ALPACA = [sys.executable, "-m", "tests.chaos.loopback_alpaca"]
LOOPBACK_OPEN = datetime(2024, 11, 27, 20, 0, tzinfo=UTC)  # 15:00 New York, session open
SAMPLE_END = datetime(2024, 11, 27, 21, 30, tzinfo=UTC)
"""The sample ends with the session of 2024-11-27, so the default simulated now is its close
window (open) and CLOSED_SIM_NOW (the Saturday after) has the same prices."""


@pytest.fixture
async def world(
    postgres_url: str, rabbitmq_url: str, tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
    await upgrade(postgres_url)
    data_dir = tmp_path / "data"
    ensure_sample(data_dir, {"SPY", "QQQ"}, SAMPLE_END)
    namespace = unique_bus_namespace()
    store = SqlEventStore(postgres_url)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ALCHEMISER_")}
    env.update(
        {
            "ALCHEMISER_DATABASE_URL": postgres_url,
            "ALCHEMISER_RABBITMQ_URL": rabbitmq_url,
            "ALCHEMISER_BUS_NAMESPACE": namespace,
            "ALCHEMISER_DATA_DIR": str(data_dir),
            "ALCHEMISER_TIMER_POLL_S": "0.05",
            "ALCHEMISER_EXEC_POLL_S": "0.5",
            "ALCHEMISER_EXEC_FILL_WAIT_S": "1",
            "ALCHEMISER_EXEC_CANCEL_CONFIRM_S": "1",
            "ALCHEMISER_EXEC_FINAL_WAIT_S": "1",
            "ALCHEMISER_LOG_LEVEL": "WARNING",
        }
    )
    try:
        yield {"env": env, "store": store}
    finally:
        await store.close()
        await delete_bus_namespace(namespace)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def execution_process(
    env: dict[str, str], kill_at: str | None = None, alpaca_url: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`alchemiser serve execution`; with `kill_at`, killed by SIGKILL at that fault point; with
    `alpaca_url`, trading at that loopback Alpaca."""
    command = ALCHEMISER if kill_at is None else [*KILL_AT, kill_at]
    if alpaca_url is not None:
        command = [*LOOPBACK_ALPACA, alpaca_url]
    process = subprocess.Popen(
        [*command, "serve", "execution", "--port", str(free_port())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


async def publish_plan(
    store: SqlEventStore, workflow_id: str, items: list[tuple[str, str, str, str]]
) -> None:
    """Record the plan as the portfolio service would; the execution process's outbox relay
    publishes it to RabbitMQ and its consumer picks it up."""
    async with store.unit_of_work() as uow:
        await uow.append(
            stream_of("portfolio", workflow_id), None, [plan_event(workflow_id, items)]
        )


def broker_orders(env: dict[str, str], workflow_id: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [*ALCHEMISER, "broker", "orders", "--workflow", workflow_id, "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    orders: list[dict[str, Any]] = json.loads(result.stdout)
    return orders


async def event_types(store: SqlEventStore, workflow_id: str) -> list[str]:
    return [r.event.event_type for r in await store.read_correlation(workflow_id)]


async def finished(store: SqlEventStore, workflow_id: str) -> bool:
    types = await event_types(store, workflow_id)
    return "WorkflowCompleted" in types or "WorkflowFailed" in types


async def test_kill_after_the_broker_accepted_an_order_never_places_it_twice(
    world: dict[str, Any],
) -> None:
    env, store = world["env"], world["store"]
    workflow_id = "chaos-after-submit"
    with execution_process(env, kill_at=AFTER_SUBMIT) as first:
        await publish_plan(store, workflow_id, [("SPY", "BUY", "5000", "0.05")])
        await eventually(lambda: first.poll() is not None, timeout_s=60, message="no crash")
        assert first.returncode == -signal.SIGKILL

    types = await event_types(store, workflow_id)
    assert "OrderRequested" in types and "OrderSubmitted" not in types
    assert len(broker_orders(env, workflow_id)) == 1

    with execution_process(env):
        await eventually(lambda: finished(store, workflow_id), timeout_s=60)

    orders = broker_orders(env, workflow_id)
    assert len(orders) == 1 and orders[0]["status"] == "filled"
    types = await event_types(store, workflow_id)
    assert types.count("OrderSubmitted") == 1
    assert types.count("TradeExecuted") == 1 and types.count("WorkflowCompleted") == 1


async def test_kill_while_waiting_on_the_repeg_timer_resumes_it_once(
    world: dict[str, Any],
) -> None:
    env = {**world["env"], "ALCHEMISER_SIM_NOW": CLOSED_SIM_NOW, "ALCHEMISER_EXEC_FILL_WAIT_S": "3"}
    store = world["store"]
    workflow_id = "chaos-repeg-wait"
    with execution_process(env) as first:
        await publish_plan(store, workflow_id, [("QQQ", "BUY", "5000", "0.05")])
        await eventually(
            lambda: _has(store, workflow_id, "OrderSubmitted"), timeout_s=60, message="no order"
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert "OrderCancelled" not in await event_types(store, workflow_id)

    with execution_process(env):
        await eventually(lambda: finished(store, workflow_id), timeout_s=60)

    orders = broker_orders(env, workflow_id)
    counts = Counter(order["client_order_id"] for order in orders)
    assert len(orders) == 3 and set(counts.values()) == {1}
    assert all(order["status"] == "canceled" for order in orders)
    recorded = [r.event for r in await store.read_correlation(workflow_id)]
    assert [e.reason for e in recorded if isinstance(e, OrderRequested)] == [
        "initial",
        "repeg",
        "escalation",
    ]
    assert [e.reason for e in recorded if isinstance(e, OrderCancelled)] == [
        "repeg",
        "escalation",
        "leftover",
    ]
    types = [e.event_type for e in recorded]
    assert types.count("TradeExecuted") == 1 and types[-1] == "WorkflowFailed"


async def _has(store: SqlEventStore, workflow_id: str, event_type: str) -> bool:
    return event_type in await event_types(store, workflow_id)


def loopback_statuses(loopback: AlpacaLoopback) -> list[str]:
    with loopback.world.lock:
        loopback.world.settle()
        return [order.status for order in loopback.world.orders.values()]


async def test_kill_while_a_cancel_is_pending_at_alpaca_keeps_one_order_at_the_plan(
    world: dict[str, Any],
) -> None:
    store = world["store"]
    workflow_id = "chaos-pending-cancel"
    with running_alpaca(clock=ControlledClock(LOOPBACK_OPEN)) as loopback:
        loopback.world.set_quote("SPY", Decimal("599.70"), Decimal("600.30"))
        loopback.world.set_fill(FillRule(FillMode.NEVER), "SPY")
        loopback.world.set_cancel("SPY", CancelRule(pending_s=20, end=CancelEnd.FILLED))
        env = {
            **world["env"],
            "ALCHEMISER_BROKER": "alpaca",
            "ALCHEMISER_ALPACA_KEY_ID": loopback.world.key_id,
            "ALCHEMISER_ALPACA_SECRET_KEY": loopback.world.secret_key,
            "ALCHEMISER_EXEC_MAX_REPEGS": "0",
        }

        def pending() -> bool:
            return loopback_statuses(loopback) == ["pending_cancel"]

        with execution_process(env, alpaca_url=loopback.base_url) as first:
            await publish_plan(store, workflow_id, [("SPY", "BUY", "40000", "0.4")])
            await eventually(pending, timeout_s=60, message="the cancel never went pending")
            await asyncio.sleep(2)  # tracked past EXEC_CANCEL_CONFIRM_S
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        assert pending()

        with execution_process(env, alpaca_url=loopback.base_url):
            await asyncio.sleep(2)  # the restarted service tracks the pending cancel
            assert pending()
            loopback.world.clock.advance(20)  # the fill wins the race at Alpaca
            await eventually(lambda: finished(store, workflow_id), timeout_s=60)

        recorded = [r.event for r in await store.read_correlation(workflow_id)]
        [requested] = [e for e in recorded if isinstance(e, OrderRequested)]
        with loopback.world.lock:
            [order] = loopback.world.orders.values()
            held = loopback.world.account.holdings["SPY"].qty
        assert order.client_order_id == requested.client_order_id
        assert loopback.world.creates(order.client_order_id) == 1
        assert order.status == "filled" and held == requested.qty
        assert [(e.filled_qty, e.complete) for e in recorded if isinstance(e, OrderFilled)] == [
            (requested.qty, True)
        ]
        types = [e.event_type for e in recorded]
        assert types.count("TradeExecuted") == 1 and types[-1] == "WorkflowCompleted"
