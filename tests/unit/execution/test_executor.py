"""The production executor's batch: the due timers of several chains fired in one `fire`, their
broker reads side by side, the submissions in plan order, merged into one state, advanced once
and committed once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from services.execution.state import ChainState, WorkflowPhase
from services.execution.steps import AFTER_SUBMIT
from shared import faults
from shared.events import OrderFilled, OrderRequested, OrderSubmitted
from shared.events.trades import TradeExecuted
from shared.events.workflow import WorkflowCompleted
from tests.unit.execution.broker_fake import FakeBroker, Fill
from tests.unit.execution.machine_run import LEASE_S, Machine, MachineRun, line

QUOTE = (Decimal("100.00"), Decimal("100.50"))


def broker_for(**fills: Fill) -> FakeBroker:
    return FakeBroker(quotes={symbol: QUOTE for symbol in fills}, fills=dict(fills))


async def armed(run: MachineRun) -> list[tuple[str, str]]:
    return sorted((timer.chain, timer.kind) for timer in await run.pending())


async def test_chains_fired_in_one_batch_are_merged_into_one_state_and_one_commit(
    machine: Machine,
) -> None:
    broker = broker_for(AAA=Fill.IMMEDIATE, BBB=Fill.MARKET_ONLY, CCC=Fill.IMMEDIATE)
    run = await machine.start(
        broker,
        [line("AAA", "BUY", "1005"), line("BBB", "BUY", "1005"), line("CCC", "BUY", "1005")],
    )
    started = run.version

    await run.step()

    assert sorted((timer.chain, timer.kind) for _, timer in run.fired) == [
        ("BUY:AAA", "price"),
        ("BUY:BBB", "price"),
        ("BUY:CCC", "price"),
    ]
    assert run.version == started + 1
    assert [chain.state for chain in run.state.chains] == [ChainState.REQUESTED] * 3
    assert [request.symbol for request in run.of(OrderRequested)] == ["AAA", "BBB", "CCC"]
    assert await armed(run) == [
        ("BUY:AAA", "submit"),
        ("BUY:BBB", "submit"),
        ("BUY:CCC", "submit"),
    ]

    await run.step()

    assert run.version == started + 2
    assert broker.submissions == [request.client_order_id for request in run.of(OrderRequested)]
    assert [chain.state for chain in run.state.chains] == [
        ChainState.FILLED,
        ChainState.WORKING,
        ChainState.FILLED,
    ]
    assert run.state.phase is WorkflowPhase.BUYING
    assert len(run.of(OrderSubmitted)) == 3 and len(run.of(OrderFilled)) == 2
    assert await armed(run) == [("BUY:BBB", "poll")]


async def test_the_batch_that_ends_the_last_chains_advances_the_workflow_once(
    machine: Machine,
) -> None:
    broker = broker_for(AAA=Fill.IMMEDIATE, BBB=Fill.IMMEDIATE)
    run = await machine.start(broker, [line("AAA", "BUY", "1005"), line("BBB", "BUY", "1005")])
    await run.step()
    before = run.version

    await run.step()

    assert run.version == before + 1
    assert run.state.phase is WorkflowPhase.DONE
    assert [chain.state for chain in run.state.chains] == [ChainState.FILLED] * 2
    assert len(run.of(TradeExecuted)) == 1 and len(run.of(WorkflowCompleted)) == 1
    assert run.of(TradeExecuted)[0].orders_succeeded == 2
    assert await armed(run) == []


async def test_sells_ended_in_one_batch_release_their_proceeds_together(machine: Machine) -> None:
    broker = broker_for(AAA=Fill.IMMEDIATE, BBB=Fill.IMMEDIATE, CCC=Fill.IMMEDIATE)
    broker.positions.update(AAA=Decimal(20), BBB=Decimal(20))
    run = await machine.start(
        broker,
        [
            line("AAA", "SELL", "-1005", "0.1"),
            line("BBB", "SELL", "-1005", "0.1"),
            line("CCC", "BUY", "500"),
        ],
    )
    await run.step()

    await run.step()

    sold = [chain for chain in run.state.chains if chain.side == "SELL"]
    assert [chain.state for chain in sold] == [ChainState.FILLED] * 2
    assert run.state.phase is WorkflowPhase.SETTLING
    assert run.state.released == sum((chain.filled_value for chain in sold), Decimal(0)) > 0
    assert await armed(run) == [("", "bp_check")]


class Killed(Exception):
    pass


class KillAt:
    """Ends the step at the fault point as a SIGKILL would end the process: nothing after it
    runs, nothing is committed."""

    def __init__(self, point: str) -> None:
        self.point = point

    def reached(self, point: str) -> None:
        if point == self.point:
            raise Killed(point)


@pytest.fixture
def killed_after_submit() -> Iterator[None]:
    faults.install(KillAt(AFTER_SUBMIT))
    try:
        yield
    finally:
        faults.install(faults.NoFaults())


async def test_a_step_killed_after_the_broker_took_the_order_never_places_it_twice(
    machine: Machine, killed_after_submit: None
) -> None:
    broker = broker_for(AAA=Fill.IMMEDIATE)
    run = await machine.start(broker, [line("AAA", "BUY", "1005")])
    await run.step()

    with pytest.raises(Killed):
        await run.step()

    await run.refresh()
    assert len(broker.orders) == 1 and run.of(OrderSubmitted) == []
    faults.install(faults.NoFaults())
    run.now += timedelta(seconds=LEASE_S)
    await run.run_to_end()
    assert broker.submissions == [run.of(OrderRequested)[0].client_order_id]
    assert len(run.of(OrderSubmitted)) == 1 and run.state.phase is WorkflowPhase.DONE
