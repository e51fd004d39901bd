"""What must hold after a workflow whatever was killed during it: completed once, every order
once at the broker and never more than asked, positions at the target weights, every event
published once and consumed once by each service bound to it, no timer left behind.

`violations` returns readable findings instead of raising, so a fault run can report every
broken invariant together with the seed and the fault that broke it."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import aio_pika
import sqlalchemy as sa

from services import registry
from shared.broker.simulated import ledger
from shared.bus.topic import topic_matches
from shared.events import (
    CLIENT_ORDER_ID_PREFIX,
    Event,
    OrderEvent,
    OrderFilled,
    OrderRequested,
    RebalancePlanned,
    WorkflowFailed,
)
from shared.eventstore.records import RecordedEvent
from shared.eventstore.schema import inbox, outbox
from shared.eventstore.store import SqlEventStore
from shared.eventstore.timers import timers
from shared.eventstore.workflow_queries import requested_orders
from shared.settings import Settings
from tests.e2e.cluster import Cluster
from tests.servers import RABBITMQ_URL, SERVICES

TERMINAL = ("WorkflowCompleted", "WorkflowFailed")
ONCE_PER_WORKFLOW = ("WorkflowStarted", "SignalGenerated", "RebalancePlanned", "TradeExecuted")
ONCE_PER_ORDER = ("OrderRequested", "OrderSubmitted")
RESERVE = Decimal("0.01")
"""The cash reserve r: targets are w·(1 − r)·PV (docs/trading-rules.md, Plan formulas)."""
WEIGHT_TOLERANCE = Decimal("0.01")
"""After ideal execution |C′/PV − (1 − r)·w| < 0.01 (+ p/PV for whole shares)
(docs/trading-rules.md, Plan invariants, item 4)."""


def bindings() -> dict[str, tuple[str, ...]]:
    """The routing keys each service's queue is bound to, from the services' own definitions."""
    settings = Settings()
    return {
        service: tuple(
            registry.SERVICES[registry.ServiceName(service)].definition(settings).event_types
        )
        for service in SERVICES
    }


def consumers_of(event_type: str, bound: Mapping[str, Sequence[str]]) -> list[str]:
    return [
        service
        for service, patterns in bound.items()
        if any(topic_matches(pattern, event_type) for pattern in patterns)
    ]


@dataclass(frozen=True)
class Delivery:
    """Where a workflow's events are on their way: unsent outbox rows, missing inbox rows,
    timers still armed."""

    unsent: list[str]
    undelivered: list[str]
    timers_left: list[str]

    @property
    def settled(self) -> bool:
        return not (self.unsent or self.undelivered or self.timers_left)


async def terminal_events(store: SqlEventStore, workflow_id: str) -> list[Event]:
    return [
        recorded.event
        for recorded in await store.read_correlation(workflow_id)
        if recorded.event.event_type in TERMINAL
    ]


async def delivery(
    store: SqlEventStore, workflow_id: str, bound: Mapping[str, Sequence[str]]
) -> Delivery:
    events = [recorded.event for recorded in await store.read_correlation(workflow_id)]
    ids = [event.event_id for event in events]
    async with store.engine.connect() as connection:
        sent: dict[UUID, list[bool]] = defaultdict(list)
        for row in await connection.execute(
            sa.select(outbox.c.event_id, outbox.c.sent_at).where(outbox.c.event_id.in_(ids))
        ):
            sent[row.event_id].append(row.sent_at is not None)
        consumed = {
            (row.service, row.event_id)
            for row in await connection.execute(
                sa.select(inbox.c.service, inbox.c.event_id).where(inbox.c.event_id.in_(ids))
            )
        }
        armed = (
            await connection.execute(
                sa.select(timers.c.service, timers.c.chain, timers.c.kind).where(
                    timers.c.workflow_id == workflow_id
                )
            )
        ).all()
    unsent = [
        f"{event.event_type} {event.event_id}: outbox rows sent={sent.get(event.event_id, [])}"
        for event in events
        if sent.get(event.event_id) != [True]
    ]
    undelivered = [
        f"{event.event_type} {event.event_id} not in the inbox of {service}"
        for event in events
        for service in consumers_of(event.event_type, bound)
        if (service, event.event_id) not in consumed
    ]
    type_of = {event.event_id: event.event_type for event in events}
    strays = [
        f"{service} consumed {type_of[event_id]} {event_id}, which it is not bound to"
        for service, event_id in consumed
        if service not in consumers_of(type_of[event_id], bound)
    ]
    timers_left = [f"{row.service} timer {row.kind} chain {row.chain!r}" for row in armed]
    return Delivery(unsent, undelivered + strays, timers_left)


async def wait_settled(
    store: SqlEventStore,
    workflow_id: str,
    bound: Mapping[str, Sequence[str]],
    timeout_s: float,
) -> list[str]:
    """Wait until the workflow has ended and its events are all published and consumed and
    its timers gone; what is still missing after `timeout_s`, as findings."""
    deadline = time.monotonic() + timeout_s
    while True:
        ended = await terminal_events(store, workflow_id)
        state = await delivery(store, workflow_id, bound)
        lag = await store.outbox_lag()
        if ended and state.settled and lag == 0:
            return []
        if time.monotonic() >= deadline:
            findings = [] if ended else [f"workflow not ended within {timeout_s} s"]
            findings += state.unsent + state.undelivered + state.timers_left
            if lag:
                findings.append(f"outbox lag {lag} (rows never published)")
            return findings
        await asyncio.sleep(0.1)


def event_counts(events: Sequence[Event]) -> list[str]:
    """Completed exactly once; every per-workflow and per-order event recorded once."""
    findings: list[str] = []
    types = Counter(event.event_type for event in events)
    if types["WorkflowCompleted"] != 1 or types["WorkflowFailed"]:
        failed = [e.failure_reason for e in events if isinstance(e, WorkflowFailed)]
        findings.append(
            f"{types['WorkflowCompleted']} WorkflowCompleted and {types['WorkflowFailed']} "
            f"WorkflowFailed (want 1 and 0): {failed}"
        )
    findings += [f"{types[name]} {name} (want 1)" for name in ONCE_PER_WORKFLOW if types[name] != 1]
    per_order = Counter(
        (event.event_type, event.client_order_id)
        for event in events
        if isinstance(event, OrderEvent) and event.event_type in ONCE_PER_ORDER
    )
    findings += [
        f"{count} {event_type} for {client_order_id}"
        for (event_type, client_order_id), count in per_order.items()
        if count > 1
    ]
    completions = Counter(
        event.client_order_id
        for event in events
        if isinstance(event, OrderFilled) and event.complete
    )
    findings += [f"{n} complete OrderFilled for {coid}" for coid, n in completions.items() if n > 1]
    ids = Counter(event.event_id for event in events)
    findings += [f"event {event_id} stored {n} times" for event_id, n in ids.items() if n > 1]
    return findings


async def broker_findings(
    store: SqlEventStore, events: Sequence[Event], account_id: str
) -> list[str]:
    """Each intent once at the broker, never more filled than the chain asked for, and the
    account at the plan's target weights (docs/trading-rules.md, Plan invariants, item 4)."""
    workflow_id = events[0].correlation_id
    plan = next(e for e in events if isinstance(e, RebalancePlanned)).rebalance_plan
    requested = [e for e in events if isinstance(e, OrderRequested)]
    asked: dict[tuple[str, str], Decimal] = {}
    for intent in requested:  # a chain's first intent carries the quantity the plan sized
        asked.setdefault((intent.symbol, intent.side), intent.qty)
    async with store.engine.connect() as connection:
        workflows = await requested_orders(connection)
        own = [
            order
            for order in await ledger.order_rows(connection, account_id=account_id)
            if order.client_order_id.startswith(CLIENT_ORDER_ID_PREFIX)
        ]
        positions = await ledger.position_rows(connection, account_id)
    orders = [order for order in own if workflows.get(order.client_order_id) == workflow_id]
    findings: list[str] = []
    placed = Counter(order.client_order_id for order in orders)
    findings += [f"{coid} placed {n} times at the broker" for coid, n in placed.items() if n > 1]
    findings += [
        f"{order.client_order_id} at the broker without an OrderRequested"
        for order in own
        if order.client_order_id not in workflows
    ]
    filled: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for order in orders:
        filled[(order.symbol, order.side.upper())] += order.filled_qty
    planned_sides = {(item.symbol, item.action) for item in plan.items if item.action != "HOLD"}
    for key, quantity in filled.items():
        if key not in planned_sides:
            findings.append(f"{key[1]} {key[0]} at the broker; the plan did not ask for it")
        elif quantity > asked.get(key, Decimal(0)):
            findings.append(f"{key[1]} {key[0]}: filled {quantity} > asked {asked.get(key)}")
    portfolio_value = plan.total_portfolio_value
    held = {row.symbol: row for row in positions if row.qty != 0}
    for symbol in held.keys() - {item.symbol for item in plan.items}:
        findings.append(f"position in {symbol}, which the plan does not mention")
    for item in plan.items:
        row = held.get(item.symbol)
        value = ledger.market_value(row) if row is not None else Decimal(0)
        price = row.last_price if row is not None else Decimal(0)
        gap = abs(value / portfolio_value - (1 - RESERVE) * item.target_weight)
        if gap >= WEIGHT_TOLERANCE + price / portfolio_value:
            findings.append(
                f"{item.symbol}: holds {value} of {portfolio_value} "
                f"(weight {value / portfolio_value:.4f}), target {item.target_weight}"
            )
    return findings


async def dead_letters(namespace: str, rabbitmq_url: str = RABBITMQ_URL) -> dict[str, int]:
    """Messages waiting in each service's dead-letter queue: an event a service gave up on."""
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel()
        counts: dict[str, int] = {}
        for service in SERVICES:
            queue = await channel.declare_queue(f"{namespace}.{service}.dlq", passive=True)
            counts[service] = queue.declaration_result.message_count or 0
        return counts
    finally:
        await connection.close()


async def violations(
    cluster: Cluster,
    workflow_id: str,
    account_id: str,
    bound: Mapping[str, Sequence[str]],
    dead_before: Mapping[str, int],
    timeout_s: float = 120,
) -> list[str]:
    """Every invariant broken by one finished (or stuck) workflow; `dead_before` is
    `dead_letters` as it was before the workflow started."""
    assert cluster.store is not None
    findings = await wait_settled(cluster.store, workflow_id, bound, timeout_s)
    dead_now = await dead_letters(cluster.namespace, cluster.rabbitmq_url)
    findings += [
        f"{dead_now[service] - dead_before.get(service, 0)} message(s) dead-lettered by {service} "
        f"(see {cluster.log_path(service)})"
        for service in SERVICES
        if dead_now[service] > dead_before.get(service, 0)
    ]
    events = await cluster.events(workflow_id)
    findings += event_counts(events)
    if any(event.event_type == "RebalancePlanned" for event in events):
        findings += await broker_findings(cluster.store, events, account_id)
    return findings


STORE_PAGE = 1000


async def every_event(store: SqlEventStore) -> dict[str, RecordedEvent]:
    """The whole store by event id, paged by position: read before a fault, compared after."""
    found: dict[str, RecordedEvent] = {}
    position = 0
    while page := await store.read_all(position, STORE_PAGE):
        found.update((str(recorded.event.event_id), recorded) for recorded in page)
        position = page[-1].position
    return found


def _what_is_kept(recorded: RecordedEvent) -> tuple[Any, ...]:
    """What a fault must keep of an event: its place in the store and its content."""
    return (recorded.position, recorded.stream_id, recorded.stream_version, recorded.event)


def lost_or_changed(
    before: Mapping[str, RecordedEvent], after: Mapping[str, RecordedEvent]
) -> list[str]:
    """Every event committed before a fault that is missing after it or no longer the same."""
    return [
        f"committed {recorded.event.event_type} {event_id} (position {recorded.position}) "
        + ("is missing after the fault" if event_id not in after else "changed in it")
        for event_id, recorded in before.items()
        if event_id not in after or _what_is_kept(after[event_id]) != _what_is_kept(recorded)
    ]
