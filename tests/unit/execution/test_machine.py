"""The execution state machine's transitions, run in memory against a hand-written broker on a
fake clock:

docs/trading-rules.md, Supervision / Re-pegging / Escalation / Remainders / Partial fills
docs/trading-rules.md, Market path / Settlement / Broker errors / Outcome classification
docs/trading-rules.md, Execution state machine / Edge cases
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from services.execution.machine import TimerKind
from services.execution.state import ChainState, WorkflowPhase, from_document, to_document
from shared.broker.errors import (
    InsufficientBuyingPowerError,
    InsufficientQtyAvailableError,
    InvalidOrderError,
    RateLimitedError,
)
from shared.broker.models import OrderStatus
from shared.events import (
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderRequested,
    OrderSubmitted,
)
from shared.events.trades import TradeExecuted
from shared.events.workflow import WorkflowCompleted, WorkflowFailed
from shared.trading import Quote, QuoteSource
from tests.unit.execution.broker_fake import FakeBroker, Fill
from tests.unit.execution.machine_run import T0, Machine, line

QUOTE = (Decimal("100.00"), Decimal("100.50"))


def broker_for(**fills: Fill) -> FakeBroker:
    return FakeBroker(quotes={symbol: QUOTE for symbol in fills}, fills=dict(fills))


async def test_passive_limit_that_never_fills_is_repegged_once_then_sent_to_market(
    machine: Machine,
) -> None:
    broker = broker_for(AAA=Fill.MARKET_ONLY)
    run = await machine.start(broker, [line("AAA", "BUY", "1005")])

    await run.run_to_end()

    requests = run.of(OrderRequested)
    assert [(r.reason, r.order_type, r.attempt) for r in requests] == [
        ("initial", "LIMIT", 1),
        ("repeg", "LIMIT", 2),
        ("escalation", "MARKET", 3),
    ]
    assert requests[0].limit_price == Decimal("100.01")
    assert requests[1].limit_price == Decimal("100.52")
    cancels = run.of(OrderCancelled)
    assert [c.reason for c in cancels] == ["repeg", "escalation"]
    assert [run.seconds(r.occurred_at) for r in requests] == [0, 10, 20]
    assert len(broker.orders) == 3
    market = broker.orders_of("AAA")[-1]
    assert market.qty == requests[0].qty and market.filled_qty == market.qty
    assert run.of(TradeExecuted)[0].success
    assert len(run.of(WorkflowCompleted)) == 1


async def test_cancel_that_races_a_fill_ends_the_chain_filled_without_a_repeg(
    machine: Machine,
) -> None:
    broker = broker_for(AAA=Fill.ON_CANCEL)
    run = await machine.start(broker, [line("AAA", "BUY", "1005")])

    await run.run_to_end()

    assert [r.reason for r in run.of(OrderRequested)] == ["initial"]
    assert len(broker.orders) == 1
    filled = run.of(OrderFilled)
    assert len(filled) == 1 and filled[0].complete
    assert run.of(OrderCancelled) == []
    assert run.state.chains[0].state is ChainState.FILLED
    assert run.of(TradeExecuted)[0].success


async def test_partial_fill_then_stall_chases_only_the_remainder_and_never_exceeds_requested(
    machine: Machine,
) -> None:
    broker = broker_for(AAA=Fill.HALF_THEN_STALL)
    run = await machine.start(broker, [line("AAA", "BUY", "1005")])

    await run.run_to_end()

    requests = run.of(OrderRequested)
    requested = requests[0].qty
    assert [r.reason for r in requests] == ["initial", "repeg"]
    first, second = broker.orders_of("AAA")
    assert second.qty == requested - first.filled_qty
    total_filled = sum((order.filled_qty for order in broker.orders.values()), Decimal(0))
    assert total_filled == requested
    chain = run.state.chains[0]
    assert chain.filled_qty == requested
    cancelled = run.of(OrderCancelled)
    assert cancelled[0].filled_qty == first.filled_qty
    result = run.of(TradeExecuted)[0].execution_data.orders[0]
    assert result.filled_qty == requested and result.requested_qty == requested
    assert [a.kind for a in result.attempts] == ["limit", "repeg"]


async def test_remainder_worth_less_than_the_minimum_completes_the_chain(machine: Machine) -> None:
    broker = broker_for(AAA=Fill.ALL_BUT_CRUMB)
    run = await machine.start(broker, [line("AAA", "BUY", "1005")])

    await run.run_to_end()

    assert len(broker.orders) == 1
    assert [c.reason for c in run.of(OrderCancelled)] == ["repeg"]
    assert [r.reason for r in run.of(OrderRequested)] == ["initial"]
    assert run.state.chains[0].state is ChainState.FILLED
    assert run.of(TradeExecuted)[0].success


async def test_limit_rejected_at_submission_falls_back_to_a_market_order(machine: Machine) -> None:
    broker = broker_for(AAA=Fill.IMMEDIATE)
    broker.submit_faults.append(InvalidOrderError("limit price out of band", code="42210000"))
    run = await machine.start(broker, [line("AAA", "BUY", "1005")])

    await run.run_to_end()

    rejected = run.of(OrderRejected)
    assert len(rejected) == 1
    assert (rejected[0].broker_code, rejected[0].retryable) == ("42210000", False)
    requests = run.of(OrderRequested)
    assert [(r.order_type, r.reason) for r in requests] == [
        ("LIMIT", "initial"),
        ("MARKET", "fallback"),
    ]
    assert len(broker.orders) == 1
    assert run.of(TradeExecuted)[0].success


async def test_insufficient_buying_power_rejects_for_good_and_fails_the_workflow(
    machine: Machine,
) -> None:
    broker = broker_for(AAA=Fill.IMMEDIATE)
    broker.buying_power = Decimal("10")
    broker.submit_faults.append(
        InsufficientBuyingPowerError("insufficient buying power", code="40310000")
    )
    run = await machine.start(broker, [line("AAA", "BUY", "1005")])

    await run.run_to_end()

    rejected = run.of(OrderRejected)
    assert len(rejected) == 1 and rejected[0].retryable is False
    assert broker.account_reads == 5
    bp_waits = [run.seconds(t) for t, timer in run.fired if timer.kind == "market_bp"]
    assert bp_waits == [1, 3, 7, 15]
    assert broker.orders == {}
    trade = run.of(TradeExecuted)[0]
    assert not trade.success
    assert "insufficient buying power for AAA" in (
        trade.execution_data.orders[0].error_message or ""
    )
    failed = run.of(WorkflowFailed)
    assert len(failed) == 1 and failed[0].failure_step == "trade_execution"
    assert failed[0].failure_reason == "trade execution failed: 0/1 orders succeeded"


async def test_rate_limited_submission_is_retried_after_looking_the_order_up(
    machine: Machine,
) -> None:
    broker = broker_for(AAA=Fill.IMMEDIATE)
    broker.submit_faults.append(RateLimitedError("429 too many requests", retry_after_s=3.0))
    run = await machine.start(broker, [line("AAA", "BUY", "1005")])

    await run.run_to_end()

    client_order_id = run.of(OrderRequested)[0].client_order_id
    assert broker.submissions == [client_order_id, client_order_id]
    submits = [run.seconds(t) for t, timer in run.fired if timer.kind == "submit"]
    assert submits == [0, 3]
    assert len(broker.orders) == 1
    assert len(run.of(OrderSubmitted)) == 1
    assert run.of(TradeExecuted)[0].success


async def test_lost_submission_answer_finds_the_order_instead_of_placing_it_again(
    machine: Machine,
) -> None:
    broker = broker_for(AAA=Fill.IMMEDIATE)
    broker.submit_faults.append("lost")
    run = await machine.start(broker, [line("AAA", "BUY", "1005")])

    await run.run_to_end()

    assert len(broker.submissions) == 1
    assert len(broker.orders) == 1
    assert len(run.of(OrderSubmitted)) == 1
    assert run.of(TradeExecuted)[0].success


async def test_sells_end_before_buying_power_is_checked_and_buys_start(machine: Machine) -> None:
    broker = broker_for(SSS=Fill.IMMEDIATE, BBB=Fill.IMMEDIATE)
    broker.positions["SSS"] = Decimal("20")
    run = await machine.start(
        broker, [line("BBB", "BUY", "1005"), line("SSS", "SELL", "-1005", "0.1")]
    )

    await run.run_to_end()

    sides = [r.side for r in run.of(OrderRequested)]
    assert sides == ["SELL", "BUY"]
    kinds = [timer.kind for _, timer in run.fired]
    assert kinds.index(TimerKind.BP_CHECK) < kinds.index(TimerKind.PRICE, 1)
    assert run.of(TradeExecuted)[0].orders_placed == 2


async def test_liquidation_sells_the_whole_position_whatever_the_price(machine: Machine) -> None:
    broker = broker_for(SSS=Fill.IMMEDIATE)
    broker.positions["SSS"] = Decimal("7.5")
    run = await machine.start(broker, [line("SSS", "SELL", "-10", "0")])

    await run.run_to_end()

    assert run.of(OrderRequested)[0].qty == Decimal("7.5")
    assert broker.positions["SSS"] == 0


async def test_one_failed_symbol_makes_a_partial_execution_that_fails_the_workflow(
    machine: Machine,
) -> None:
    broker = broker_for(AAA=Fill.IMMEDIATE)
    run = await machine.start(broker, [line("AAA", "BUY", "1005"), line("NOQ", "BUY", "500")])

    await run.run_to_end()

    trade = run.of(TradeExecuted)[0]
    assert (trade.orders_placed, trade.orders_succeeded) == (2, 1)
    assert trade.failed_symbols == ("NOQ",)
    assert not trade.success and not trade.execution_data.success
    assert run.of(WorkflowFailed)[0].failure_reason == (
        "trade execution partially failed: 1/2 orders succeeded. Failed symbols: NOQ"
    )


async def test_partial_execution_completes_when_partial_is_not_a_failure(machine: Machine) -> None:
    broker = broker_for(AAA=Fill.IMMEDIATE)
    run = await machine.start(
        broker,
        [line("AAA", "BUY", "1005"), line("NOQ", "BUY", "500")],
        treat_partial_as_failure=False,
    )

    await run.run_to_end()

    trade = run.of(TradeExecuted)[0]
    assert trade.success and not trade.execution_data.success
    assert len(run.of(WorkflowCompleted)) == 1 and run.of(WorkflowFailed) == []


async def test_micro_buy_is_skipped_and_not_placed(machine: Machine) -> None:
    broker = broker_for(AAA=Fill.IMMEDIATE)
    run = await machine.start(broker, [line("AAA", "BUY", "1005"), line("AAA2", "BUY", "0.50")])
    broker.quotes["AAA2"] = QUOTE

    await run.run_to_end()

    trade = run.of(TradeExecuted)[0]
    assert trade.orders_placed == 1 and trade.orders_succeeded == 1
    assert [s.reason for s in trade.skipped] == ["skipped: estimated notional below minimum"]
    assert "AAA2" not in {order.symbol for order in broker.orders.values()}


async def test_state_document_round_trips_mid_workflow(machine: Machine) -> None:
    broker = broker_for(AAA=Fill.HALF_THEN_STALL)
    run = await machine.start(broker, [line("AAA", "BUY", "1005")])

    await run.run_to_end()

    assert run.state.phase is WorkflowPhase.DONE
    assert from_document(to_document(run.state)) == run.state


async def test_state_document_saved_before_quotes_carried_a_symbol_reads_back(
    machine: Machine,
) -> None:
    run = await machine.start(broker_for(AAA=Fill.NEVER), [line("AAA", "BUY", "1005")])
    quoted = Quote(
        symbol="AAA",
        bid=QUOTE[0],
        ask=QUOTE[1],
        bid_size=Decimal(100),
        ask_size=Decimal(100),
        as_of=T0,
        source=QuoteSource.REST,
    )
    state = run.state.with_chain(replace(run.state.chains[0], quote=quoted))
    document = to_document(state)
    del document["chains"][0]["quote"]["symbol"]

    assert from_document(document) == state


async def test_submission_that_stays_rate_limited_is_rejected_as_retryable_then_falls_back(
    machine: Machine,
) -> None:
    broker = broker_for(AAA=Fill.IMMEDIATE)
    broker.submit_faults.extend(RateLimitedError("429", retry_after_s=None) for _ in range(4))
    run = await machine.start(broker, [line("AAA", "BUY", "1005")], broker_retries=3)

    await run.run_to_end()

    submits = [run.seconds(t) for t, timer in run.fired if timer.kind == TimerKind.SUBMIT]
    assert submits[:4] == [0, 1, 3, 7]
    rejected = run.of(OrderRejected)
    assert len(rejected) == 1 and rejected[0].retryable is True
    assert [r.order_type for r in run.of(OrderRequested)] == ["LIMIT", "MARKET"]
    assert len(broker.orders) == 1 and run.of(TradeExecuted)[0].success


async def test_limit_ended_by_the_broker_sends_the_remainder_to_market(machine: Machine) -> None:
    broker = broker_for(AAA=Fill.NEVER)
    run = await machine.start(broker, [line("AAA", "BUY", "1005")])
    for _ in range(2):
        await run.step()
    (limit,) = broker.orders.values()
    broker.orders[limit.order_id] = limit.model_copy(
        update={"status": OrderStatus.REJECTED, "broker_status": "expired"}
    )
    broker.fills["AAA"] = Fill.IMMEDIATE

    await run.run_to_end()

    assert [c.reason for c in run.of(OrderCancelled)] == ["expired"]
    assert [(r.order_type, r.reason) for r in run.of(OrderRequested)] == [
        ("LIMIT", "initial"),
        ("MARKET", "residual"),
    ]
    assert run.of(TradeExecuted)[0].success


async def test_repeg_refused_for_insufficient_qty_is_resubmitted_once_with_the_available_qty(
    machine: Machine,
) -> None:
    broker = broker_for(SSS=Fill.MARKET_ONLY)
    broker.positions["SSS"] = Decimal(10)
    refusal = InsufficientQtyAvailableError(
        "insufficient qty available for order (requested: 10, available: 4)",
        requested_qty=Decimal(10),
        available_qty=Decimal(4),
        code="40310000",
    )
    broker.submit_faults.extend(["ok", refusal])
    run = await machine.start(broker, [line("SSS", "SELL", "-1005", "0.1")])

    await run.run_to_end()

    requests = run.of(OrderRequested)
    assert [(r.reason, r.qty) for r in requests][:3] == [
        ("initial", Decimal(10)),
        ("repeg", Decimal(10)),
        ("repeg", Decimal(4)),
    ]
    assert run.of(OrderRejected)[0].reason.startswith("insufficient qty available")


async def test_market_order_still_working_after_the_final_wait_is_cancelled_and_fails(
    machine: Machine,
) -> None:
    broker = broker_for(AAA=Fill.NEVER)
    run = await machine.start(broker, [line("AAA", "BUY", "1005")])

    await run.run_to_end()

    cancelled = run.of(OrderCancelled)
    assert [c.reason for c in cancelled] == ["repeg", "escalation", "leftover"]
    market_requested = [r for r in run.of(OrderRequested) if r.order_type == "MARKET"]
    leftover_at = next(t for t, timer in reversed(run.fired) if timer.kind == TimerKind.POLL)
    assert run.seconds(leftover_at) == 20 + run.settings.exec_final_wait_s == 50
    assert len(market_requested) == 1
    assert all(order.is_terminal for order in broker.orders.values())
    trade = run.of(TradeExecuted)[0]
    assert not trade.success and trade.execution_data.orders[0].final_status == "rejected"
    assert trade.execution_data.orders[0].error_message is None


async def test_cancel_confirmed_late_is_awaited_on_a_timer_before_the_repeg(
    machine: Machine,
) -> None:
    broker = broker_for(AAA=Fill.MARKET_ONLY)
    broker.cancel_delays["AAA"] = 3
    run = await machine.start(broker, [line("AAA", "BUY", "1005")])

    await run.run_to_end()

    cancel_checks = [
        run.seconds(t) for t, timer in run.fired if timer.kind == TimerKind.CANCEL_CHECK
    ]
    assert cancel_checks[:2] == [12, 14]
    requests = run.of(OrderRequested)
    assert [r.reason for r in requests] == ["initial", "repeg", "escalation"]
    assert run.seconds(requests[1].occurred_at) == 14
    assert run.of(TradeExecuted)[0].success


async def test_an_unconfirmed_cancel_is_tracked_until_the_order_ends_and_only_then_replaced(
    machine: Machine,
) -> None:
    broker = broker_for(AAA=Fill.MARKET_ONLY)
    broker.cancel_delays["AAA"] = 8  # reads of the order before a cancel shows
    run = await machine.start(broker, [line("AAA", "BUY", "1005")])

    await run.run_to_end()

    requests = run.of(OrderRequested)
    assert [(r.reason, r.order_type) for r in requests] == [
        ("initial", "LIMIT"),
        ("repeg", "LIMIT"),
        ("escalation", "MARKET"),
    ]
    # the cancel asked at 10 s is read at once and then every 2 s; the eighth read shows it
    assert run.seconds(requests[1].occurred_at) == 10 + 7 * 2
    assert len(broker.orders) == 3 and run.state.chains[0].checks == 2
    assert run.of(TradeExecuted)[0].success


async def test_no_quote_after_three_attempts_sends_a_liquidation_to_market(
    machine: Machine,
) -> None:
    broker = broker_for(SSS=Fill.IMMEDIATE)
    broker.positions["SSS"] = Decimal(4)
    broker.no_quotes.add("SSS")
    run = await machine.start(broker, [line("SSS", "SELL", "-400", "0")])

    await run.run_to_end()

    attempts = [run.seconds(t) for t, timer in run.fired if timer.kind == TimerKind.PRICE]
    assert attempts == [0, 0.3, 0.9]
    requests = run.of(OrderRequested)
    assert [(r.order_type, r.reason, r.qty, r.quote) for r in requests] == [
        ("MARKET", "fallback", Decimal(4), None)
    ]
    assert run.of(TradeExecuted)[0].success


async def test_the_close_guard_cancels_working_orders_and_places_nothing_after_it(
    machine: Machine,
) -> None:
    """The session closes 125 s after the start, so the guard begins at T0+5: the SELL fills,
    the BUY's limit rests and is cancelled at the guard instead of re-pegged, and the report
    names it as not placed; one order of two succeeded, a PARTIAL that fails the workflow
    (docs/trading-rules.md, Close guard)."""
    broker = broker_for(AAA=Fill.IMMEDIATE, BBB=Fill.MARKET_ONLY)
    broker.positions["AAA"] = Decimal(10)
    broker.session_close = T0 + timedelta(seconds=125)
    run = await machine.start(
        broker, [line("AAA", "SELL", "-1005", "0"), line("BBB", "BUY", "1005")]
    )

    await run.run_to_end()

    assert len(broker.submissions) == 2
    [cancelled] = run.of(OrderCancelled)
    assert cancelled.symbol == "BBB" and cancelled.reason == "close"
    assert run.seconds(cancelled.occurred_at) == 5
    assert all(run.seconds(r.occurred_at) < 5 for r in run.of(OrderRequested))
    assert not [order for order in broker.orders.values() if not order.is_terminal]
    [executed] = run.of(TradeExecuted)
    assert (executed.orders_placed, executed.orders_succeeded) == (2, 1)
    assert executed.failure_reason is not None and "Failed symbols: BBB" in executed.failure_reason
    unplaced = executed.execution_data.orders[1]
    assert (unplaced.symbol, unplaced.final_status) == ("BBB", "unplaced")
    assert unplaced.error_message is not None
    assert "ALCHEMISER_EXEC_CLOSE_MARGIN_S" in unplaced.error_message
    assert len(run.of(WorkflowFailed)) == 1


async def test_a_run_that_starts_with_the_session_closed_has_no_close_guard(
    machine: Machine,
) -> None:
    broker = broker_for(AAA=Fill.MARKET_ONLY)
    broker.session_close = None
    run = await machine.start(broker, [line("AAA", "BUY", "1005")])

    await run.run_to_end()

    assert run.state.session_close is None
    assert [r.reason for r in run.of(OrderRequested)] == ["initial", "repeg", "escalation"]
