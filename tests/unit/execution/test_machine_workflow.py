"""The workflow transitions of the execution state machine, pure: phases, the buying-power checks
between them and the verdict events, with no broker and no clock
(docs/trading-rules.md, Execution state machine / Phases / Settlement)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from services.execution.machine import (
    StepResult,
    TimerKind,
    advance,
    after_settle_check,
    after_stale_cancel,
    backoff_s,
    finish,
    open_phase,
    stale_and_foreign,
)
from services.execution.policy import ExecutionPolicy
from services.execution.state import ChainState, WorkflowPhase
from shared.broker.models import Order, OrderStatus, OrderType
from shared.events.ids import client_order_id
from shared.events.trades import TradeExecuted
from shared.events.workflow import WorkflowCompleted
from shared.settings import load_settings
from shared.trading import Side
from tests.unit.execution.machine_run import T0, line, workflow

POLICY = ExecutionPolicy.from_settings(load_settings())


def planned(*lines: tuple[str, str, str, str]) -> StepResult:
    """A workflow of these plan lines with its first phase opened at T0."""
    return open_phase(workflow(*(line(*item) for item in lines)), Side.SELL, T0, POLICY)


def test_a_plan_with_sells_opens_the_sell_phase_with_one_price_timer_per_sell() -> None:
    run = planned(
        ("AAA", "SELL", "-500", "0"), ("BBB", "BUY", "500", "0.1"), ("CCC", "SELL", "-9", "0.1")
    )

    assert run.state.phase is WorkflowPhase.SELLING
    assert [chain.key for chain in run.state.chains] == ["SELL:AAA", "SELL:CCC"]
    assert run.state.chains[0].liquidation and not run.state.chains[1].liquidation
    assert [(t.chain, t.kind, t.due_at) for t in run.timers] == [
        ("SELL:AAA", TimerKind.PRICE, T0),
        ("SELL:CCC", TimerKind.PRICE, T0),
    ]


def test_a_plan_without_sells_goes_straight_to_buying() -> None:
    run = planned(("BBB", "BUY", "500", "0.1"), ("HHH", "HOLD", "0", "0.2"))

    assert run.state.phase is WorkflowPhase.BUYING
    assert [chain.key for chain in run.state.chains] == ["BUY:BBB"]


def test_filled_sells_move_to_settling_with_the_released_proceeds() -> None:
    run = planned(("AAA", "SELL", "-500", "0"), ("BBB", "BUY", "500", "0.1"))
    sold = replace(
        run.state.chains[0],
        state=ChainState.FILLED,
        closed_filled_qty=Decimal(5),
        closed_filled_value=Decimal("501.25"),
    )

    result = advance(run.state.with_chain(sold), T0, POLICY)

    assert result.state.phase is WorkflowPhase.SETTLING
    assert result.state.released == Decimal("501.25")
    assert [(t.kind, t.due_at) for t in result.timers] == [(TimerKind.BP_CHECK, T0)]


def test_sells_that_all_failed_skip_the_settle_checks() -> None:
    run = planned(("AAA", "SELL", "-500", "0"), ("BBB", "BUY", "500", "0.1"))
    failed = replace(run.state.chains[0], state=ChainState.FAILED)

    result = advance(run.state.with_chain(failed), T0, POLICY)

    assert result.state.phase is WorkflowPhase.BUYING
    assert [t.chain for t in result.timers] == ["BUY:BBB"]


def test_settle_checks_wait_1_2_4_s_then_buy_whatever_the_buying_power() -> None:
    run = planned(("AAA", "SELL", "-500", "0"), ("BBB", "BUY", "500", "0.1"))
    state = replace(run.state, phase=WorkflowPhase.SETTLING, released=Decimal(500))
    waits = []
    now = T0
    for _ in range(POLICY.settle_checks):
        result = after_settle_check(state, Decimal(100), now, POLICY)
        state = result.state
        if state.phase is WorkflowPhase.BUYING:
            break
        waits.append((result.timers[0].due_at - now).total_seconds())
        now = result.timers[0].due_at

    assert waits == [1, 2, 4]
    assert state.phase is WorkflowPhase.BUYING and state.settle_checks == 4


def test_enough_buying_power_ends_the_settle_checks_at_once() -> None:
    run = planned(("AAA", "SELL", "-500", "0"), ("BBB", "BUY", "500", "0.1"))
    state = replace(run.state, phase=WorkflowPhase.SETTLING, released=Decimal(500))

    result = after_settle_check(state, Decimal(500), T0, POLICY)

    assert result.state.phase is WorkflowPhase.BUYING


def test_a_plan_without_trades_finishes_successfully_with_nothing_placed() -> None:
    run = planned(("HHH", "HOLD", "0", "1"))
    state = replace(run.state, chains=())

    result = finish(state, T0 + timedelta(seconds=2), POLICY)

    trade, completed = result.events
    assert isinstance(trade, TradeExecuted) and isinstance(completed, WorkflowCompleted)
    assert trade.success and trade.orders_placed == 0 and trade.failure_reason is None
    assert completed.causation_id == str(trade.event_id)
    assert completed.workflow_duration_ms == 7000
    assert result.state.phase is WorkflowPhase.DONE


def test_backoff_doubles_and_honours_retry_after() -> None:
    assert [backoff_s(n, None, 0.0) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert backoff_s(1, None, 1.0) == 1.2
    assert backoff_s(1, 5.0, 0.0) == 5.0


def test_open_phase_of_a_plan_without_items_of_either_side_finishes() -> None:
    run = planned(("HHH", "HOLD", "0", "1"))

    result = open_phase(replace(run.state, chains=()), Side.SELL, T0, POLICY)

    assert result.state.phase is WorkflowPhase.DONE


def open_order(order_id: str, client_order_id: str) -> Order:
    return Order(
        order_id=order_id,
        client_order_id=client_order_id,
        symbol="AAA",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal(1),
        limit_price=Decimal(10),
        status=OrderStatus.ACCEPTED,
        broker_status="new",
        filled_qty=Decimal(0),
        filled_avg_price=None,
        submitted_at=T0,
        updated_at=T0,
    )


def test_open_orders_of_earlier_workflows_are_stale_and_others_foreign() -> None:
    mine = client_order_id("wf-1", "AAA", Side.BUY, 1)
    orders = [
        open_order("o-1", client_order_id("wf-0", "AAA", Side.BUY, 1)),
        open_order("o-2", "manual-7"),
        open_order("o-3", mine),
        open_order("o-4", "alc:wf-0:AAA:b:buy:1"),  # an earlier workflow's, in the old format
        open_order("o-5", "alc:wf-1:AAA:b:buy:2"),  # this workflow's, in the old format
        open_order("o-6", "alc:unreadable"),
    ]

    stale, foreign = stale_and_foreign({mine, "alc:wf-1:AAA:b:buy:2"}, orders)

    assert [order.broker_order_id for order in stale] == ["o-1", "o-4", "o-6"]
    assert [order.broker_order_id for order in foreign] == ["o-2"]
    assert all(order.own for order in stale) and not foreign[0].own


def test_stale_orders_hold_the_sell_phase_until_checked_and_none_open_it_at_once() -> None:
    state = workflow(line("AAA", "SELL", "-500", "0"))
    earlier = open_order("o-1", client_order_id("wf-0", "AAA", Side.BUY, 1))
    stale, foreign = stale_and_foreign(set(), [earlier])

    waiting = after_stale_cancel(state, stale, foreign, T0, POLICY)
    started = after_stale_cancel(state, (), foreign, T0, POLICY)

    assert waiting.state.phase is WorkflowPhase.CANCELLING_STALE
    assert waiting.state.stale_deadline == T0 + timedelta(seconds=POLICY.cancel_confirm_s)
    assert [(t.kind, t.due_at) for t in waiting.timers] == [(TimerKind.STALE_CHECK, T0)]
    assert started.state.phase is WorkflowPhase.SELLING
