"""Execution's side of the kill switch (docs/trading-rules.md, Halt): whether a workflow may
still send orders, and the cancel of this system's open orders when an account is halted.

The halt state is read from the control stream at each step, not remembered: a halt recorded
by another process (the strategy service, `alchemiser halt --local`) stops the next step of every
running workflow of the account, whichever execution replica runs it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

import structlog

from shared.broker.errors import BrokerError
from shared.broker.port import Broker
from shared.events import CLIENT_ORDER_ID_PREFIX, OrderRequested
from shared.events.control import CONTROL_STREAM, HaltOrdersCancelled, TradingHalted, halt_of
from shared.eventstore.port import EventStoreReader
from shared.messaging.consumer import HandlerContext
from shared.workflow import RUNS_WHILE_HALTED, workflow_state

log = structlog.get_logger(__name__)


async def refusal(store: EventStoreReader, account_id: str, workflow_id: str) -> str | None:
    """Why `workflow_id` may send no new order (its account is halted); None when it may: the
    account is not halted, or the workflow is of a kind a halt allows (its liquidation)."""
    control = [recorded.event for recorded in await store.read_stream(CONTROL_STREAM)]
    halt = halt_of(control, account_id)
    if halt is None:
        return None
    state = workflow_state([r.event for r in await store.read_correlation(workflow_id)])
    if state is not None and state.kind in RUNS_WHILE_HALTED:
        return None
    return halt.refusal()


async def liquidation_orders(store: EventStoreReader, halt: TradingHalted) -> set[str]:
    """The client order ids of the halt's own liquidations, which its cancel leaves alone."""
    return {
        recorded.event.client_order_id
        for workflow_id in halt.liquidations.values()
        for recorded in await store.read_correlation(workflow_id)
        if isinstance(recorded.event, OrderRequested)
    }


async def cancel_open_orders(
    broker: Broker,
    halt: TradingHalted,
    account_id: str,
    keep: Collection[str],
    context: HandlerContext,
) -> HaltOrdersCancelled:
    """Cancel every open order of this system (`alc:` ids) on the account but those in `keep`;
    foreign orders are never touched. A redelivered halt finds them no longer open (or
    answered as already ended), so cancelling twice does nothing more."""
    cancelled: list[str] = []
    failed: list[str] = []
    try:
        open_orders = await broker.get_open_orders()
    except BrokerError as error:
        open_orders = []
        failed.append(f"open orders of {account_id} unreadable: {error.message}")
    for order in open_orders:
        client_id = order.client_order_id
        if not client_id.startswith(CLIENT_ORDER_ID_PREFIX) or client_id in keep:
            continue
        try:
            await broker.cancel_order(order.order_id)
        except BrokerError as error:
            failed.append(f"{client_id}: {error.message}")
            continue
        cancelled.append(client_id)
    log.warning(
        "halt: open orders cancelled", account_id=account_id, cancelled=cancelled, failed=failed
    )
    envelope = halt.caused(source=context.service, occurred_at=datetime.now(UTC))
    return HaltOrdersCancelled(
        **{**envelope, "account_id": account_id}, cancelled=tuple(cancelled), failed=tuple(failed)
    )
