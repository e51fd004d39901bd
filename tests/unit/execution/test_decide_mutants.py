"""Order-chain rules mutation testing (`make mutation`) found unpinned: transitions no row of
`test_decide.py` walked, what the attempt records and events of a chain carry, and the warnings
the rules hand the shell. Built from `test_decide.py`'s chains and broker answers."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import TypeVar

import pytest

from services.execution.chain import (
    CLOSE_SEARCH_SKEW_S,
    BuyingPowerRead,
    CloseAnswered,
    CloseFound,
    ClosePosition,
    Command,
    Decision,
    FindClose,
    Observation,
    ReadBuyingPower,
    ReadLastTrade,
    ReadQuote,
    ReadSizingFacts,
    SizingFactsRead,
    SubmitOrder,
    TimerFired,
    decide,
)
from services.execution.machine import TimerKind
from services.execution.policy import ExecutionPolicy
from services.execution.sizing import AssetInfo
from services.execution.state import AttemptRecord, Chain, ChainState
from shared.broker.errors import (
    InsufficientQtyAvailableError,
    InvalidOrderError,
    TransientBrokerError,
)
from shared.broker.models import Position
from shared.broker.order_rules import OrderRule, rule_error
from shared.events import (
    Event,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderRequested,
    OrderSubmitted,
    client_order_id,
)
from shared.trading import Side
from tests.unit.execution.machine_run import T0
from tests.unit.execution.test_decide import (
    CANCEL_CHECK,
    CANCELLING_ESCALATION,
    CANCELLING_REPEG,
    CLOSING,
    LIQUIDATION,
    MARKET_BP,
    POLICY,
    POLL,
    PRICE,
    PRICING,
    REQUESTED_LIMIT,
    REQUESTED_MARKET,
    REQUESTED_SELL,
    ROWS,
    SUBMIT,
    WAITING_FOR_BUYING_POWER,
    WORKFLOW,
    WORKING_LIMIT,
    WORKING_MARKET,
    Answer,
    Row,
    already_ended,
    buying_power,
    cancel_failed,
    cancel_taken,
    close_found,
    closed,
    facts,
    insufficient_qty,
    last_trade,
    no_quote,
    not_found,
    placed,
    quote,
    read,
    read_nothing,
    refused,
    walk,
)
from tests.unit.execution.test_decide import _expect as expect
from tests.unit.execution.test_decide import _quote as quoted
from tests.unit.execution.test_decide import (
    test_order_chain_transition as check_row,  # the rows' own check, reused for new rows
)

E = TypeVar("E", bound=Event)

ORDER_ID_1 = client_order_id(WORKFLOW.workflow_id, "AAA", Side.BUY, 1)
ORDER_ID_2 = client_order_id(WORKFLOW.workflow_id, "AAA", Side.BUY, 2)
SELL_CHAIN = replace(LIQUIDATION, trade_amount=Decimal(-1005), liquidation=False)
"""A SELL of about 10 shares that is not a liquidation."""
WHOLE_SHARES = AssetInfo(tradable=True, fractionable=False)
USUAL_QUOTE = quote()
"""100.00 / 100.50, the quote of `test_decide.py`'s chains."""
BAD_QUOTE = quote("0.001", "0.004")
"""A quote that prices no limit above $0."""


def sizing_facts(
    asset: AssetInfo | None = WHOLE_SHARES,
    *,
    position: str | None = None,
    position_failed: bool = False,
) -> Answer:
    """`asset`'s facts (None: unknown to the asset list); `position` is the shares held (all
    available), None for none read."""
    held = (
        Position(
            symbol="AAA",
            qty=Decimal(position),
            qty_available=Decimal(position),
            market_value=Decimal(0),
            avg_entry_price=Decimal(100),
            current_price=None,
        )
        if position is not None
        else None
    )
    return lambda asked: SizingFactsRead(
        expect(asked, ReadSizingFacts), asset, held, position_failed=position_failed
    )


def buying_power_at(bid: str, ask: str, amount: str | None) -> Answer:
    return lambda asked: BuyingPowerRead(
        expect(asked, ReadBuyingPower),
        quoted(bid, ask),
        Decimal(amount) if amount is not None else None,
    )


def insufficient_qty_unreadable() -> InsufficientQtyAvailableError:
    return InsufficientQtyAvailableError(
        "insufficient qty available for order",
        requested_qty=Decimal(10),
        available_qty=None,
        code="40310000",
    )


def of_type(events: list[Event], kind: type[E]) -> list[E]:
    return [event for event in events if isinstance(event, kind)]


FRACTIONAL_WORKING_LIMIT = replace(WORKING_LIMIT, fractionable=True)
FRACTIONAL = AssetInfo(tradable=True, fractionable=True)
NOT_FRACTIONABLE = rule_error(
    OrderRule.FRACTIONABLE,
    "fractional orders are not supported for this asset",
    code="42210000",
    http_status=422,
)
"""The broker's refusal of a fractional quantity of an asset its asset list called fractionable."""


def fractional_buy(dollars: int) -> Chain:
    """A BUY limit at 100.01 of `dollars` worth of a fractionable asset, recorded, not yet sent."""
    chain = replace(PRICING, trade_amount=Decimal(dollars))
    return walk(chain, PRICE, (quote(), sizing_facts(FRACTIONAL))).decision.chain


CLOSE_CALL_TIMED_OUT = TransientBrokerError("timed out", code="timeout")


def nothing_to_close() -> Answer:
    """The close-position call found no position to close."""
    return lambda asked: CloseAnswered(expect(asked, ClosePosition))


def close_listing_failed() -> Answer:
    return lambda asked: CloseFound(
        expect(asked, FindClose), error=TransientBrokerError("listing timed out", code="timeout")
    )


assert CLOSING.order is not None
CLOSING_ON_LAST_TRY = replace(CLOSING, order=replace(CLOSING.order, submit_tries=3))
"""`CLOSING` with BROKER_RETRIES (3) submissions already tried."""
WORKING_EXIT_OF_4 = walk(
    walk(LIQUIDATION, PRICE, (quote(), facts(position="4"))).decision.chain,
    SUBMIT,
    (not_found(), placed()),
).decision.chain
"""A full exit of 4 whole shares held: its SELL limit at 100.49, placed at T0 and working."""
FRACTIONAL_LIQUIDATION = walk(
    LIQUIDATION, PRICE, (quote(), sizing_facts(FRACTIONAL, position="2.3"))
).decision.chain
"""A SELL limit at 100.49 of all 2.3 shares held of a fractionable asset, recorded, not yet sent."""


def working_limit() -> Chain:
    """`WORKING_LIMIT` again, priced and placed by the rules as the test runs: what a chain
    carries from one step to the next (anchor, price history, attempt records, the request's id)
    is only tested when the test itself makes those steps."""
    requested = walk(PRICING, PRICE, (quote(), facts())).decision.chain
    return walk(requested, SUBMIT, (not_found(), placed())).decision.chain


def working_repeg(repeg_quote: Answer = USUAL_QUOTE) -> Chain:
    """That limit cancelled unfilled at T0+10, re-pegged (at 100.52 from the usual quote) and
    placed: the second order of the chain, working."""
    repegged = walk(
        working_limit(),
        POLL,
        (read("accepted"), cancel_taken(), read("canceled"), repeg_quote),
        at_s=10,
    ).decision.chain
    return walk(repegged, SUBMIT, (not_found(), placed()), at_s=10).decision.chain


def second_repeg_price(repeg_quote: Answer) -> Decimal | None:
    """The limit of the chain's next re-peg at T0+20, as under a policy allowing two."""
    chain = replace(working_repeg(), checks=0)
    result = walk(
        chain, POLL, (read("accepted"), cancel_taken(), read("canceled"), repeg_quote), at_s=20
    )
    return _limit_price(result.decision.chain)


def _limit_price(chain: Chain) -> Decimal | None:
    return chain.order.limit_price if chain.order is not None else None


# ---------------------------------------------------------------------- transitions

ROWS_FOUND_BY_MUTATION = {
    "cancel: an order gone from the broker after an 'already ended' cancel fails the chain": Row(
        WORKING_LIMIT,
        POLL,
        (read("accepted"), already_ended("canceled"), read_nothing()),
        asked=("read order: supervise", "cancel: repeg", "read order: confirm_cancel"),
        state=ChainState.FAILED,
        at_s=10,
        fields={
            "error_message": "order not found at the broker",
            "attempts.0.status": "rejected",
        },
    ),
    "cancel: an order the broker had already cancelled is re-pegged for the remainder": Row(
        WORKING_LIMIT,
        POLL,
        (read("accepted"), already_ended("canceled"), read("canceled"), quote()),
        asked=(
            "read order: supervise",
            "cancel: repeg",
            "read order: confirm_cancel",
            "quote for repeg",
        ),
        state=ChainState.REQUESTED,
        events=("OrderCancelled", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=10,
        fields={"order.kind": "repeg", "attempts.0.status": "canceled"},
    ),
    "cancel: a race with a fill is recorded as a filled attempt": Row(
        WORKING_LIMIT,
        POLL,
        (read("accepted"), already_ended("filled"), read("filled", "10", "100.01")),
        asked=("read order: supervise", "cancel: repeg", "read order: confirm_cancel"),
        state=ChainState.FILLED,
        events=("OrderFilled",),
        at_s=10,
        fields={"attempts.0.status": "filled"},
    ),
    "cancel check: an escalation cancel final at last sends only the unfilled rest to market": Row(
        CANCELLING_ESCALATION,
        CANCEL_CHECK,
        (read("canceled", "4", "100.01"), buying_power()),
        asked=("read order: cancel_check", "buying power"),
        state=ChainState.REQUESTED,
        events=("OrderFilled", "OrderCancelled", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=20,
        fields={
            "order.qty": Decimal(6),
            "closed_filled_qty": Decimal(4),
            "avg_fill_price": Decimal("100.01"),
        },
    ),
    "escalation: a fractional remainder worth under the minimum ends filled, not at market": Row(
        replace(FRACTIONAL_WORKING_LIMIT, checks=1),
        POLL,
        (
            read("partially_filled", "9.995", "100.01"),
            cancel_taken(),
            read("canceled", "9.995", "100.01"),
        ),
        asked=("read order: supervise", "cancel: escalation", "read order: after_cancel"),
        state=ChainState.FILLED,
        events=("OrderFilled", "OrderCancelled"),
        at_s=10,
    ),
    "poll: a filled order is recorded as a filled attempt": Row(
        WORKING_LIMIT,
        POLL,
        (read("filled", "10", "100.01"),),
        asked=("read order: supervise",),
        state=ChainState.FILLED,
        events=("OrderFilled",),
        at_s=2,
        fields={"attempts.0.status": "filled"},
    ),
    "poll: an order gone from the broker is recorded as a rejected attempt": Row(
        WORKING_LIMIT,
        POLL,
        (read_nothing(),),
        asked=("read order: supervise",),
        state=ChainState.FAILED,
        at_s=2,
        fields={"attempts.0.status": "rejected"},
    ),
    "poll: a limit the broker ended after one share sends the other nine to market": Row(
        WORKING_LIMIT,
        POLL,
        (read("canceled", "1", "100.01"),),
        asked=("read order: supervise",),
        state=ChainState.REQUESTED,
        events=("OrderFilled", "OrderCancelled", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=2,
        fields={"order.qty": Decimal(9)},
    ),
    "poll: a working limit the broker rejects sends its remainder to market": Row(
        WORKING_LIMIT,
        POLL,
        (read("rejected"),),
        asked=("read order: supervise",),
        state=ChainState.REQUESTED,
        events=("OrderRejected", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=2,
        fields={"order.kind": "market", "order.reason": "residual", "order.qty": Decimal(10)},
    ),
    "poll: a market order the broker ended unfilled ends the chain, saying so": Row(
        WORKING_MARKET,
        POLL,
        (read("canceled"),),
        asked=("read order: supervise",),
        state=ChainState.FAILED,
        events=("OrderCancelled",),
        at_s=12,
        fields={"error_message": "order ended at the broker unfilled"},
    ),
    "poll: a fractional remainder worth under the minimum after the broker ended it is left": Row(
        FRACTIONAL_WORKING_LIMIT,
        POLL,
        (read("canceled", "9.995", "100.01"),),
        asked=("read order: supervise",),
        state=ChainState.FILLED,
        events=("OrderFilled", "OrderCancelled"),
        at_s=2,
    ),
    "poll: a fractional remainder worth more than the minimum is chased at market": Row(
        FRACTIONAL_WORKING_LIMIT,
        POLL,
        (read("canceled", "9.6", "100.01"),),
        asked=("read order: supervise",),
        state=ChainState.REQUESTED,
        events=("OrderFilled", "OrderCancelled", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=2,
        fields={"order.kind": "market", "order.qty": Decimal("0.4")},
    ),
    "poll: a BUY remainder is valued at the ask it would pay": Row(
        # 0.00992 shares: $1.00192 at the ask of 101.00, $0.99 at the mid
        replace(FRACTIONAL_WORKING_LIMIT, quote=quoted("99.00", "101.00")),
        POLL,
        (read("canceled", "9.99008", "100.01"),),
        asked=("read order: supervise",),
        state=ChainState.REQUESTED,
        events=("OrderFilled", "OrderCancelled", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=2,
        fields={"order.qty": Decimal("0.00992")},
    ),
    "poll: a working market order is polled every interval until its final wait": Row(
        WORKING_MARKET,
        POLL,
        (read("accepted"),),
        asked=("read order: supervise",),
        state=ChainState.WORKING,
        timers=((TimerKind.POLL, 2),),
        at_s=19,
        fields={"ended_at": None},
    ),
    "leftover: a market order that filled before its cancel ends the chain filled": Row(
        WORKING_MARKET,
        POLL,
        (read("accepted"), cancel_taken(), read("filled", "10", "100.50")),
        asked=("read order: supervise", "cancel: leftover", "read order: leftover"),
        state=ChainState.FILLED,
        events=("OrderFilled",),
        at_s=40,
    ),
    "leftover: one share filled before the cancel ends the chain filled": Row(
        WORKING_MARKET,
        POLL,
        (read("partially_filled", "1", "100.50"), cancel_taken(), read("canceled", "1", "100.50")),
        asked=("read order: supervise", "cancel: leftover", "read order: leftover"),
        state=ChainState.FILLED,
        events=("OrderFilled", "OrderCancelled"),
        at_s=40,
        fields={"filled_qty": Decimal(1)},
    ),
    "re-peg: without a quote the remainder is escalated to market": Row(
        WORKING_LIMIT,
        POLL,
        (read("accepted"), cancel_taken(), read("canceled"), no_quote(), buying_power()),
        asked=(
            "read order: supervise",
            "cancel: repeg",
            "read order: after_cancel",
            "quote for repeg",
            "buying power",
        ),
        state=ChainState.REQUESTED,
        events=("OrderCancelled", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=10,
        fields={"order.kind": "market", "order.reason": "escalation"},
    ),
    "price: a retry whose pause ends exactly at the quote wait is still taken": Row(
        PRICING,
        PRICE,
        (no_quote(),),
        asked=("quote for price",),
        state=ChainState.PRICING,
        timers=((TimerKind.PRICE, 0.3),),
        at_s=4.7,
    ),
    "price: a penny stock gets a limit order too": Row(
        PRICING,
        PRICE,
        (quote("0.50", "0.52"), facts()),
        asked=("quote for price", "sizing facts"),
        state=ChainState.REQUESTED,
        events=("OrderRequested",),
        timers=((TimerKind.SUBMIT, 0),),
        fields={"order.kind": "limit", "order.limit_price": Decimal("0.51")},
    ),
    "size: a SELL whose position read failed is sized from its dollars": Row(
        SELL_CHAIN,
        PRICE,
        (quote(), sizing_facts(position_failed=True)),
        asked=("quote for price", "sizing facts with position"),
        state=ChainState.REQUESTED,
        events=("OrderRequested",),
        timers=((TimerKind.SUBMIT, 0),),
        fields={"order.qty": Decimal(10)},
    ),
    "size: a SELL of a symbol the broker holds none of is skipped": Row(
        SELL_CHAIN,
        PRICE,
        (quote(), facts()),
        asked=("quote for price", "sizing facts with position"),
        state=ChainState.SKIPPED,
    ),
    "size: an asset the broker does not trade fails the chain before any order": Row(
        PRICING,
        PRICE,
        (quote(), sizing_facts(AssetInfo(tradable=False, fractionable=False))),
        asked=("quote for price", "sizing facts"),
        state=ChainState.FAILED,
        events=("OrderRejected",),
        fields={"error_message": "asset AAA is not tradable", "requested_qty": Decimal(10)},
    ),
    "submit: a refused SELL limit falls back to a market order at once": Row(
        REQUESTED_SELL,
        SUBMIT,
        (not_found(), refused(InvalidOrderError("limit out of band"))),
        asked=("look up", "submit limit"),
        state=ChainState.REQUESTED,
        events=("OrderRejected", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        fields={"order.kind": "market", "order.reason": "fallback"},
    ),
    "submit: a market order the broker accepted as rejected fails the chain": Row(
        REQUESTED_MARKET,
        SUBMIT,
        (not_found(), placed(status="rejected")),
        asked=("look up", "submit market"),
        state=ChainState.FAILED,
        events=("OrderRejected",),
        at_s=10,
        fields={
            "error_message": f"order {ORDER_ID_2} rejected by the broker (rejected)",
            "attempts.1.status": "rejected",
            "attempts.1.broker_order_id": "ord-1",
        },
    ),
    "submit: insufficient qty without a readable figure ends the chain": Row(
        REQUESTED_SELL,
        SUBMIT,
        (not_found(), refused(insufficient_qty_unreadable())),
        asked=("look up", "submit limit"),
        state=ChainState.FAILED,
        events=("OrderRejected",),
        fields={"error_message": "insufficient qty available for order"},
    ),
    "submit: insufficient qty with nothing left fails with the broker's words": Row(
        REQUESTED_SELL,
        SUBMIT,
        (not_found(), refused(insufficient_qty("0"))),
        asked=("look up", "submit limit"),
        state=ChainState.FAILED,
        events=("OrderRejected",),
        fields={
            "error_message": "insufficient qty available for order (requested: 10, available: 0)",
            "attempts.0.status": "rejected",
        },
    ),
    "submit: insufficient qty of a cent on a fractional sell ends the chain": Row(
        replace(REQUESTED_SELL, fractionable=True),
        SUBMIT,
        (not_found(), refused(insufficient_qty("0.01"))),
        asked=("look up", "submit limit"),
        state=ChainState.FAILED,
        events=("OrderRejected",),
    ),
    "submit: a fractional sell is resubmitted with the fraction available": Row(
        replace(REQUESTED_SELL, fractionable=True),
        SUBMIT,
        (not_found(), refused(insufficient_qty("2.5"))),
        asked=("look up", "submit limit"),
        state=ChainState.REQUESTED,
        events=("OrderRejected", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        fields={"order.qty": Decimal("2.5")},
    ),
    "submit: less than a whole share available of a whole-share sell ends the chain": Row(
        REQUESTED_SELL,
        SUBMIT,
        (not_found(), refused(insufficient_qty("0.5"))),
        asked=("look up", "submit limit"),
        state=ChainState.FAILED,
        events=("OrderRejected",),
        fields={
            "error_message": "insufficient qty available for order (requested: 10, available: 0.5)"
        },
    ),
    "submit: exactly one whole share available is resubmitted": Row(
        REQUESTED_SELL,
        SUBMIT,
        (not_found(), refused(insufficient_qty("1"))),
        asked=("look up", "submit limit"),
        state=ChainState.REQUESTED,
        events=("OrderRejected", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        fields={"order.qty": Decimal(1)},
    ),
    "not fractionable: a fractional BUY is asked again once as whole shares, rounded down": Row(
        fractional_buy(1005),
        SUBMIT,
        (not_found(), refused(NOT_FRACTIONABLE)),
        asked=("look up", "submit limit"),
        state=ChainState.REQUESTED,
        events=("OrderRejected", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        fields={
            "order.attempt": 2,
            "order.kind": "limit",
            "order.qty": Decimal(10),
            "order.limit_price": Decimal("100.01"),
            "order.reason": "initial",
            "order.closes_position": False,
            "attempts.0.status": "rejected",
            "fractionable": False,
            "asset_known": True,
            "whole_shares_retry_used": True,
        },
    ),
    "not fractionable: a BUY of 1.5 shares is asked again as one share": Row(
        fractional_buy(150),
        SUBMIT,
        (not_found(), refused(NOT_FRACTIONABLE)),
        asked=("look up", "submit limit"),
        state=ChainState.REQUESTED,
        events=("OrderRejected", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        fields={"order.qty": Decimal(1), "order.kind": "limit"},
    ),
    "not fractionable: a BUY of under one share ends the chain with the broker's words": Row(
        fractional_buy(50),
        SUBMIT,
        (not_found(), refused(NOT_FRACTIONABLE)),
        asked=("look up", "submit limit"),
        state=ChainState.FAILED,
        events=("OrderRejected",),
        fields={"error_message": NOT_FRACTIONABLE.message, "attempts.0.status": "rejected"},
    ),
    "not fractionable: a fractional full exit closes the position at market instead": Row(
        FRACTIONAL_LIQUIDATION,
        SUBMIT,
        (not_found(), refused(NOT_FRACTIONABLE)),
        asked=("look up", "submit limit"),
        state=ChainState.REQUESTED,
        events=("OrderRejected", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        fields={
            "order.kind": "market",
            "order.qty": Decimal("2.3"),
            "order.limit_price": None,
            "order.closes_position": True,
            "fractionable": False,
            "asset_known": True,
            "whole_shares_retry_used": True,
        },
    ),
    "not fractionable: a whole-share retry refused again falls back to market, once": Row(
        walk(fractional_buy(1005), SUBMIT, (not_found(), refused(NOT_FRACTIONABLE))).decision.chain,
        SUBMIT,
        (not_found(), refused(NOT_FRACTIONABLE), buying_power()),
        asked=("look up", "submit limit", "buying power"),
        state=ChainState.REQUESTED,
        events=("OrderRejected", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        fields={"order.attempt": 3, "order.kind": "market", "order.reason": "fallback"},
    ),
    "exit: a close-position call that finds nothing held ends the chain, saying so": Row(
        CLOSING,
        SUBMIT,
        (close_found(None), nothing_to_close()),
        asked=("find close", "close position"),
        state=ChainState.FAILED,
        fields={
            "error_message": "no position in AAA left to close",
            "attempts.0.status": "rejected",
        },
    ),
    "exit: a close-position call refused for good fails the chain with the broker's words": Row(
        CLOSING,
        SUBMIT,
        (close_found(None), closed(InvalidOrderError("position is locked", code="40310000"))),
        asked=("find close", "close position"),
        state=ChainState.FAILED,
        events=("OrderRejected",),
        fields={"error_message": "position is locked", "attempts.0.status": "rejected"},
    ),
    "exit: a failed listing of the symbol's orders is looked at again after a backoff": Row(
        CLOSING,
        SUBMIT,
        (close_listing_failed(),),
        asked=("find close",),
        state=ChainState.REQUESTED,
        timers=((TimerKind.SUBMIT, 1),),
        fields={"order.submit_tries": 1},
    ),
    "exit: a listing that fails on the last try gives the close up, naming the failure": Row(
        replace(CLOSING, order=replace(CLOSING.order, submit_tries=3))
        if CLOSING.order
        else CLOSING,
        SUBMIT,
        (close_listing_failed(),),
        asked=("find close",),
        state=ChainState.FAILED,
        events=("OrderRejected",),
        fields={"error_message": "listing timed out (gave up after 4 submissions)"},
    ),
    "exit: a close not found after a call failed on the last try gives the close up": Row(
        replace(CLOSING, order=replace(CLOSING.order, submit_tries=3))
        if CLOSING.order
        else CLOSING,
        SUBMIT,
        (close_found(None), closed(CLOSE_CALL_TIMED_OUT), close_found(None)),
        asked=("find close", "close position", "find close after failure"),
        state=ChainState.FAILED,
        events=("OrderRejected",),
        fields={"error_message": "timed out (gave up after 4 submissions)"},
    ),
    "exit: a fractional holding worth under the minimum is closed, not ordered": Row(
        LIQUIDATION,
        PRICE,
        (quote(), sizing_facts(FRACTIONAL, position="0.005")),
        asked=("quote for price", "sizing facts with position"),
        state=ChainState.REQUESTED,
        events=("OrderRequested",),
        timers=((TimerKind.SUBMIT, 0),),
        fields={
            "order.kind": "market",
            "order.qty": Decimal("0.005"),
            "order.closes_position": True,
        },
    ),
    "exit: a fractional holding worth exactly the minimum at the bid is sold by a limit": Row(
        LIQUIDATION,
        PRICE,
        (quote(), sizing_facts(FRACTIONAL, position="0.01")),
        asked=("quote for price", "sizing facts with position"),
        state=ChainState.REQUESTED,
        events=("OrderRequested",),
        timers=((TimerKind.SUBMIT, 0),),
        fields={
            "order.kind": "limit",
            "order.qty": Decimal("0.01"),
            "order.closes_position": False,
        },
    ),
    "exit: a fractional rest worth under the minimum after a partial fill is closed": Row(
        walk(FRACTIONAL_LIQUIDATION, SUBMIT, (not_found(), placed())).decision.chain,
        POLL,
        (read("canceled", "2.295", "100.49"),),
        asked=("read order: supervise",),
        state=ChainState.REQUESTED,
        events=("OrderFilled", "OrderCancelled", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=2,
        fields={
            "order.kind": "market",
            "order.qty": Decimal("0.005"),
            "order.limit_price": None,
            "order.reason": "residual",
            "order.closes_position": True,
        },
    ),
    "price: a SELL priced at the last trade reads its position, and keeps no bad quote": Row(
        SELL_CHAIN,
        PRICE,
        (BAD_QUOTE, BAD_QUOTE, last_trade("100.50"), facts(position="10")),
        asked=("quote for price", "quote for price", "last trade", "sizing facts with position"),
        state=ChainState.REQUESTED,
        events=("OrderRequested",),
        timers=((TimerKind.SUBMIT, 0),),
        fields={"quote": None, "order.qty": Decimal(10), "order.limit_price": Decimal("100.50")},
    ),
    "exit: a fractional rest worth under the minimum after an escalation cancel is closed": Row(
        replace(
            walk(FRACTIONAL_LIQUIDATION, SUBMIT, (not_found(), placed())).decision.chain, checks=1
        ),
        POLL,
        (read("accepted"), cancel_taken(), read("canceled", "2.295", "100.49")),
        asked=("read order: supervise", "cancel: escalation", "read order: after_cancel"),
        state=ChainState.REQUESTED,
        events=("OrderFilled", "OrderCancelled", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=10,
        fields={
            "order.kind": "market",
            "order.qty": Decimal("0.005"),
            "order.limit_price": None,
            "order.reason": "escalation",
            "order.closes_position": True,
        },
    ),
    "cancel: the fill so far of an order still pending its cancel is kept": Row(
        WORKING_LIMIT,
        POLL,
        (read("accepted"), cancel_taken(), read("pending_cancel", "4", "100.01")),
        asked=("read order: supervise", "cancel: repeg", "read order: after_cancel"),
        state=ChainState.CANCELLING,
        timers=((TimerKind.CANCEL_CHECK, 2),),
        at_s=10,
        fields={
            "filled_qty": Decimal(4),
            "order.filled_qty": Decimal(4),
            "order.filled_avg_price": Decimal("100.01"),
        },
    ),
    "leftover: the fill so far of a leftover still pending its cancel is kept": Row(
        WORKING_MARKET,
        POLL,
        (read("accepted"), cancel_taken(), read("pending_cancel", "4", "100.50")),
        asked=("read order: supervise", "cancel: leftover", "read order: leftover"),
        state=ChainState.CANCELLING,
        timers=((TimerKind.CANCEL_CHECK, 2),),
        at_s=40,
        fields={"filled_qty": Decimal(4), "order.filled_avg_price": Decimal("100.50")},
    ),
    "price: a BUY quote bad only for a BUY (no cent inside a sub-cent bid) is asked again": Row(
        PRICING,
        PRICE,
        (quote("0.001", "0.008"), quote(), facts()),
        asked=("quote for price", "quote for price", "sizing facts"),
        state=ChainState.REQUESTED,
        events=("OrderRequested",),
        timers=((TimerKind.SUBMIT, 0),),
        fields={"order.limit_price": Decimal("100.01"), "requoted": True},
    ),
    "size: a fraction worth under $1 at its limit is skipped, saying what and at what price": Row(
        replace(PRICING, trade_amount=Decimal(1)),
        PRICE,
        (quote("90.00", "110.00"), sizing_facts(FRACTIONAL)),
        asked=("quote for price", "sizing facts"),
        state=ChainState.SKIPPED,
        fields={
            "error_message": "skipped: estimated notional below minimum: 0.010000 AAA at 90.01 "
            "is worth under the broker's $1 minimum for a fractional order"
        },
    ),
    "exit: a full exit the broker ended wholly filled under another status ends filled": Row(
        WORKING_EXIT_OF_4,
        POLL,
        (read("canceled", "4", "100.49"),),
        asked=("read order: supervise",),
        state=ChainState.FILLED,
        events=("OrderFilled", "OrderCancelled"),
        at_s=2,
    ),
    "close guard: a cancel refused exactly as the guard begins polls again after the interval": Row(
        WORKING_LIMIT,
        POLL,
        (read("accepted"), cancel_failed()),
        asked=("read order: supervise", "cancel: close"),
        state=ChainState.WORKING,
        timers=((TimerKind.POLL, 2),),
        at_s=0,
        closes_at_s=120,
    ),
    "fallback: a fractional SELL under $1 at the bid is not sent to market": Row(
        walk(
            replace(SELL_CHAIN, trade_amount=Decimal(-1)),
            PRICE,
            (quote(), sizing_facts(FRACTIONAL, position="10")),
        ).decision.chain,
        SUBMIT,
        (not_found(), refused(InvalidOrderError("limit price too far", code="42210000"))),
        asked=("look up", "submit limit"),
        state=ChainState.SKIPPED,
        events=("OrderRejected",),
        fields={
            "error_message": "skipped: estimated notional below minimum: 0.009975 AAA at 100.00 "
            "is worth under the broker's $1 minimum for a fractional order"
        },
    ),
    "fallback: a rest under $1 at the bid after a fill of under a share ends filled": Row(
        walk(
            walk(
                replace(SELL_CHAIN, trade_amount=Decimal("-1.50")),
                PRICE,
                (quote(), sizing_facts(FRACTIONAL, position="10")),
            ).decision.chain,
            SUBMIT,
            (not_found(), placed()),
        ).decision.chain,
        POLL,
        (read("rejected", "0.005", "100.49"),),
        asked=("read order: supervise",),
        state=ChainState.FILLED,
        events=("OrderFilled", "OrderRejected"),
        at_s=2,
        fields={"filled_qty": Decimal("0.005"), "error_message": None},
    ),
    "exit: one share left after the broker ended a full exit's limit goes to market": Row(
        WORKING_EXIT_OF_4,
        POLL,
        (read("canceled", "3", "100.49"),),
        asked=("read order: supervise",),
        state=ChainState.REQUESTED,
        events=("OrderFilled", "OrderCancelled", "OrderRequested"),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=2,
        fields={"order.kind": "market", "order.qty": Decimal(1), "order.reason": "residual"},
    ),
    "market buy: the check prices the BUY at the fresh quote": Row(
        WAITING_FOR_BUYING_POWER,
        MARKET_BP,
        (buying_power_at("200.00", "201.00", "1500"),),
        asked=("buying power",),
        state=ChainState.PRICING,
        timers=((TimerKind.MARKET_BP, 2),),
        at_s=11,
        fields={"bp_checks": 2},
    ),
    "market buy: a failed account read skips the check": Row(
        WAITING_FOR_BUYING_POWER,
        MARKET_BP,
        (buying_power_at("100.00", "100.50", None),),
        asked=("buying power",),
        state=ChainState.REQUESTED,
        events=("OrderRequested",),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=11,
    ),
    "market buy: after waiting, the order is asked with the reason it waited with": Row(
        WAITING_FOR_BUYING_POWER,
        MARKET_BP,
        (buying_power(),),
        asked=("buying power",),
        state=ChainState.REQUESTED,
        events=("OrderRequested",),
        timers=((TimerKind.SUBMIT, 0),),
        at_s=11,
        fields={"order.kind": "market", "order.reason": "escalation"},
    ),
}


@pytest.mark.parametrize("row", ROWS_FOUND_BY_MUTATION.values(), ids=ROWS_FOUND_BY_MUTATION.keys())
def test_order_chain_transition_found_by_mutation(row: Row) -> None:
    check_row(row)


def test_a_re_peg_after_the_market_fell_below_the_limit_goes_half_way_down_from_it() -> None:
    assert _limit_price(working_repeg(quote("99.80", "99.90"))) == Decimal("99.96")


def test_a_re_peg_price_equal_to_the_first_limit_is_bumped_never_repeated() -> None:
    assert _limit_price(working_repeg(quote("99.90", "99.99"))) == Decimal("100.03")


def test_the_next_re_peg_starts_from_the_last_re_peg_price() -> None:
    assert second_repeg_price(quote("100.20", "100.30")) == Decimal("100.41")


def test_the_next_re_peg_never_repeats_the_last_re_peg_price() -> None:
    assert second_repeg_price(quote()) == Decimal("100.54")


def test_the_quote_wait_counts_from_the_first_try() -> None:
    first_try = walk(replace(PRICING, pricing_started_at=None), PRICE, (no_quote(),))
    assert first_try.decision.chain.state is ChainState.PRICING

    last_try = walk(first_try.decision.chain, PRICE, (no_quote(), facts()), at_s=4.8)

    assert last_try.decision.chain.state is ChainState.FAILED


def test_a_partly_filled_chain_whose_market_buy_cannot_be_afforded_ends_filled() -> None:
    one_share = walk(
        replace(WORKING_LIMIT, checks=1),
        POLL,
        (
            read("partially_filled", "1", "100.01"),
            cancel_taken(),
            read("canceled", "1", "100.01"),
            buying_power("10"),
        ),
        at_s=10,
    ).decision.chain

    result = walk(replace(one_share, bp_checks=4), MARKET_BP, (buying_power("10"),), at_s=25)

    assert result.decision.chain.state is ChainState.FILLED
    assert result.decision.chain.filled_qty == Decimal(1)


def test_a_market_buy_waiting_for_buying_power_keeps_its_reason_for_the_next_check() -> None:
    result = walk(WAITING_FOR_BUYING_POWER, MARKET_BP, (buying_power("10"),), at_s=11)

    (timer,) = result.decision.timers
    assert timer.payload == {"reason": "escalation"}


# ---------------------------------------------------------------------- what a chain records


def test_the_average_fill_price_counts_only_what_filled() -> None:
    result = walk(working_repeg(), POLL, (read("filled", "10", "100.52"),), at_s=12)

    assert result.decision.chain.avg_fill_price == Decimal("100.52")


def test_each_ended_order_is_recorded_with_its_limit_broker_id_and_how_it_ended() -> None:
    first, second = walk(
        working_repeg(), POLL, (read("filled", "10", "100.52"),), at_s=12
    ).decision.chain.attempts

    assert first == AttemptRecord(
        kind="limit",
        client_order_id=ORDER_ID_1,
        limit_price=Decimal("100.01"),
        broker_order_id="ord-1",
        status="canceled",
    )
    assert (second.kind, second.limit_price, second.status) == (
        "repeg",
        Decimal("100.52"),
        "filled",
    )


def test_a_re_peg_records_the_quote_it_was_priced_from() -> None:
    result = walk(
        WORKING_LIMIT,
        POLL,
        (read("accepted"), cancel_taken(), read("canceled"), quote("100.10", "100.60")),
        at_s=10,
    )

    (requested,) = of_type(result.events, OrderRequested)
    assert requested.quote == quoted("100.10", "100.60")
    assert result.decision.chain.quote == quoted("100.10", "100.60")


def test_an_untradable_asset_is_rejected_as_attempt_one_caused_by_the_plan() -> None:
    result = walk(
        PRICING, PRICE, (quote(), sizing_facts(AssetInfo(tradable=False, fractionable=False)))
    )

    (rejected,) = of_type(result.events, OrderRejected)
    assert rejected.causation_id == WORKFLOW.plan_event_id
    assert (rejected.attempt, rejected.client_order_id) == (1, ORDER_ID_1)
    assert (rejected.reason, rejected.broker_code, rejected.retryable) == (
        "asset AAA is not tradable",
        "NOT_TRADABLE",
        False,
    )


@pytest.mark.parametrize(
    ("chain", "fired", "answers", "at_s"),
    [
        (WORKING_LIMIT, POLL, (read("rejected"),), 2),
        (REQUESTED_MARKET, SUBMIT, (not_found(), placed(status="rejected")), 10),
    ],
    ids=["rejected-while-working", "accepted-as-rejected"],
)
def test_an_order_the_broker_rejected_is_recorded_with_its_broker_id_as_final(
    chain: Chain, fired: TimerFired, answers: tuple[Answer, ...], at_s: float
) -> None:
    result = walk(chain, fired, answers, at_s)

    (rejected,) = of_type(result.events, OrderRejected)
    assert rejected.broker_order_id == "ord-1"
    assert rejected.retryable is False
    assert "rejected by the broker (rejected)" in rejected.reason


def test_a_refusal_is_recorded_with_the_brokers_code_and_whether_a_retry_could_work() -> None:
    assert REQUESTED_LIMIT.order is not None
    gave_up = walk(
        replace(REQUESTED_LIMIT, order=replace(REQUESTED_LIMIT.order, submit_tries=3)),
        SUBMIT,
        (
            not_found(),
            refused(TransientBrokerError("503", code="http_503")),
            not_found(),
            buying_power(),
        ),
    )
    no_qty = walk(REQUESTED_SELL, SUBMIT, (not_found(), refused(insufficient_qty("4"))))

    rejections = of_type(gave_up.events + no_qty.events, OrderRejected)
    assert [(event.broker_code, event.retryable) for event in rejections] == [
        ("http_503", True),
        ("40310000", False),
    ]


def test_a_bad_quote_is_warned_about_with_the_symbol_and_what_it_quoted() -> None:
    once = walk(PRICING, PRICE, (BAD_QUOTE,)).decision
    twice = walk(PRICING, PRICE, (BAD_QUOTE, BAD_QUOTE)).decision

    [asking_again] = [note.message for note in once.notes]
    [from_last_trade] = [note.message for note in twice.notes]
    assert "AAA (bid 0.001, ask 0.004)" in asking_again
    assert "asking again" in asking_again
    assert "AAA (bid 0.001, ask 0.004)" in from_last_trade
    assert "last trade" in from_last_trade


def test_an_account_rule_refusal_is_recorded_with_the_brokers_code() -> None:
    error = rule_error(
        OrderRule.PATTERN_DAY_TRADER, "trade denied", code="40310100", http_status=403
    )
    result = walk(REQUESTED_LIMIT, SUBMIT, (not_found(), refused(error)))

    (rejected,) = of_type(result.events, OrderRejected)
    assert rejected.broker_code == "40310100"


def test_a_close_position_call_refused_for_good_is_recorded_with_the_brokers_code() -> None:
    refusal = InvalidOrderError("position is locked", code="40310000")
    result = walk(CLOSING, SUBMIT, (close_found(None), closed(refusal)))

    (rejected,) = of_type(result.events, OrderRejected)
    assert (rejected.reason, rejected.broker_code, rejected.retryable) == (
        "position is locked",
        "40310000",
        False,
    )


def test_an_asset_unknown_to_the_asset_list_is_warned_about_by_symbol() -> None:
    result = walk(PRICING, PRICE, (quote(), sizing_facts(None)))

    [warning] = [note.message for note in result.decision.notes]
    assert warning.startswith("AAA is unknown to the broker's asset list")
    assert result.decision.chain.state is ChainState.REQUESTED


def walk_under(
    policy: ExecutionPolicy,
    chain: Chain,
    fired: TimerFired,
    answers: tuple[Answer, ...],
    at_s: float,
) -> Decision:
    """`walk` under another execution policy than `test_decide.py`'s."""
    now = T0 + timedelta(seconds=at_s)
    decision = decide(WORKFLOW, chain, fired, now, policy)
    for answer in answers:
        assert decision.command is not None
        decision = decide(WORKFLOW, decision.chain, answer(decision.command), now, policy)
    return decision


MIN_NOTIONAL_5 = replace(POLICY, min_notional_usd=Decimal(5))
"""EXEC_MIN_NOTIONAL_USD above the broker's $1: a remainder between the two is left, and only
the quote it is valued at (0.03 shares at the ask 100.50: $3.02) tells it from one to chase."""


def test_a_rest_under_a_higher_minimum_notional_after_the_broker_ended_the_order_is_left() -> None:
    ended = walk_under(
        MIN_NOTIONAL_5, FRACTIONAL_WORKING_LIMIT, POLL, (read("canceled", "9.97", "100.01"),), 2
    )

    assert ended.command is None
    assert ended.chain.state is ChainState.FILLED


def test_a_rest_under_a_higher_minimum_notional_is_not_re_pegged() -> None:
    answers = (read("accepted"), cancel_taken(), read("canceled", "9.97", "100.01"), quote())
    ended = walk_under(MIN_NOTIONAL_5, FRACTIONAL_WORKING_LIMIT, POLL, answers, 10)

    assert ended.command is None
    assert ended.chain.state is ChainState.FILLED


def test_a_not_fractionable_refusal_is_recorded_with_the_brokers_words_and_code() -> None:
    result = walk(fractional_buy(1005), SUBMIT, (not_found(), refused(NOT_FRACTIONABLE)))

    (rejected,) = of_type(result.events, OrderRejected)
    (again,) = of_type(result.events, OrderRequested)
    assert (rejected.attempt, rejected.reason, rejected.broker_code, rejected.retryable) == (
        1,
        NOT_FRACTIONABLE.message,
        "42210000",
        False,
    )
    assert (again.attempt, again.qty, again.order_type) == (2, Decimal(10), "LIMIT")


@pytest.mark.parametrize(
    ("status", "reason"),
    [("canceled", "broker"), ("expired", "expired")],
    ids=["cancelled", "expired"],
)
def test_an_order_the_broker_ended_is_recorded_as_cancelled_by_it(status: str, reason: str) -> None:
    result = walk(WORKING_LIMIT, POLL, (read(status),), at_s=2)

    (cancelled,) = of_type(result.events, OrderCancelled)
    assert cancelled.reason == reason


def test_only_the_fill_that_completes_an_order_is_recorded_as_complete() -> None:
    partial = walk(WORKING_LIMIT, POLL, (read("canceled", "4", "100.01"),), at_s=2)
    full = walk(WORKING_LIMIT, POLL, (read("filled", "10", "100.01"),), at_s=2)
    partial_before_leftover_cancel = walk(
        WORKING_MARKET,
        POLL,
        (read("accepted"), cancel_taken(), read("canceled", "4", "100.50")),
        at_s=40,
    )

    fills = [
        fill
        for run in (partial, full, partial_before_leftover_cancel)
        for fill in of_type(run.events, OrderFilled)
    ]
    assert [fill.complete for fill in fills] == [False, True, False]


def test_a_fill_reported_without_a_price_is_not_recorded_but_warned_about() -> None:
    result = walk(WORKING_MARKET, POLL, (read("filled", "1", None),), at_s=12)

    assert result.events == []
    assert result.decision.chain.state is ChainState.FILLED
    assert [bool(note.message) for note in result.decision.notes] == [True]


def recording(answer: Answer, commands: list[Command]) -> Answer:
    def record(asked: Command) -> Observation:
        commands.append(asked)
        return answer(asked)

    return record


ALL_ROWS = {**ROWS, **ROWS_FOUND_BY_MUTATION}


@pytest.mark.parametrize("row", ALL_ROWS.values(), ids=ALL_ROWS.keys())
def test_every_order_event_is_caused_by_the_request_of_its_attempt(row: Row) -> None:
    """The causal chain of an order: the first request is caused by the plan, each later one by
    the request before it, and every other event of an order by that order's request."""
    result = walk(row.chain, row.fired, row.answers, row.at_s, row.closes_at_s)

    requested = (
        {row.chain.order.attempt: row.chain.order.requested_event_id} if row.chain.order else {}
    )
    for event in result.events:
        assert isinstance(event, OrderEvent)
        if isinstance(event, OrderRequested):
            cause = requested.get(event.attempt - 1, WORKFLOW.plan_event_id)
            assert event.causation_id == cause
            requested[event.attempt] = str(event.event_id)
        elif event.attempt in requested:
            assert event.causation_id == requested[event.attempt]
        if isinstance(event, OrderRequested | OrderRejected):
            continue
        assert event.broker_order_id == "ord-1", event.event_type


def test_the_events_of_an_orders_later_steps_are_caused_by_its_request() -> None:
    priced = walk(PRICING, PRICE, (quote(), facts()))
    submitted = walk(priced.decision.chain, SUBMIT, (not_found(), placed()))

    (requested,) = of_type(priced.events, OrderRequested)
    (accepted,) = of_type(submitted.events, OrderSubmitted)
    assert accepted.causation_id == str(requested.event_id)


@pytest.mark.parametrize("row", ALL_ROWS.values(), ids=ALL_ROWS.keys())
def test_every_broker_command_names_the_chains_symbol(row: Row) -> None:
    commands: list[Command] = []

    walk(
        row.chain,
        row.fired,
        tuple(recording(answer, commands) for answer in row.answers),
        row.at_s,
        row.closes_at_s,
    )

    for command in commands:
        match command:
            case ReadQuote() | ReadSizingFacts() | ReadBuyingPower():
                assert command.symbol == row.chain.symbol, command
            case SubmitOrder():
                assert command.request.symbol == row.chain.symbol, command
            case FindClose() | ClosePosition() | ReadLastTrade():
                assert command.symbol == row.chain.symbol, command


def test_a_close_is_looked_for_among_orders_since_a_minute_before_its_intent() -> None:
    """The broker's clock may run behind ours: listing from the intent's own time could miss
    the close it made."""
    commands: list[Command] = []
    answers = (close_found(None), closed(CLOSE_CALL_TIMED_OUT), close_found(None))
    walk(CLOSING, SUBMIT, tuple(recording(answer, commands) for answer in answers), at_s=30)

    searches = [command for command in commands if isinstance(command, FindClose)]
    since = T0 - timedelta(seconds=CLOSE_SEARCH_SKEW_S)
    assert [search.since for search in searches] == [since, since]
    assert [search.failure for search in searches] == [None, CLOSE_CALL_TIMED_OUT]


# ---------------------------------------------------------------------- warnings for the shell


@pytest.mark.parametrize(
    ("chain", "answers", "at_s"),
    [
        (WORKING_LIMIT, (read("accepted"), cancel_failed()), 10),
        (WORKING_MARKET, (read("accepted"), cancel_failed()), 40),
    ],
    ids=["re-peg-cancel", "leftover-cancel"],
)
def test_a_cancel_the_broker_refused_is_warned_about_with_the_brokers_error(
    chain: Chain, answers: tuple[Answer, ...], at_s: float
) -> None:
    notes = walk(chain, POLL, answers, at_s).decision.notes

    assert [(bool(note.message), note.error) for note in notes] == [(True, "cancel timed out")]


@pytest.mark.parametrize(
    "chain", [CANCELLING_REPEG, CANCELLING_ESCALATION], ids=["re-peg", "escalation"]
)
def test_a_cancel_not_confirmed_in_time_is_warned_about(chain: Chain) -> None:
    notes = walk(chain, CANCEL_CHECK, (read("accepted"),), at_s=20).decision.notes

    assert [(bool(note.message), note.error) for note in notes] == [(True, None)]
