"""Execution never sends an order Alpaca would refuse for its form: every order a chain submits —
the first limit, the re-peg, the market order after it, a resubmitted remainder — goes through
the same rule table the loopback Alpaca and the simulated broker enforce
(`shared.broker.order_rules`) and is accepted: no sub-penny limit price, no fractional order
worth under $1, no quantity beyond 9 decimals, no client order id over 48 characters
(docs/trading-rules.md, Alpaca order rules; Client order ids).

The chain is driven as the shell drives it: its `decide` asks, a broker that never refuses
answers (a quote, the asset, the position, a fill of part of the first order), the timers it arms
fire in turn, until the chain ends. Prices, quantities and ids all come from execution's own
pricing, sizing and id code; the test only chooses the market."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.execution.chain import (
    BuyingPowerRead,
    CancelAnswered,
    CancelOrder,
    CloseAnswered,
    CloseFound,
    ClosePosition,
    Command,
    FindClose,
    LastTradeRead,
    LookUpOrder,
    Observation,
    OrderLookedUp,
    OrderRead,
    QuoteRead,
    ReadBuyingPower,
    ReadLastTrade,
    ReadOrder,
    ReadQuote,
    ReadSizingFacts,
    SizingFactsRead,
    SubmitAnswered,
    SubmitOrder,
    TimerFired,
    decide,
)
from services.execution.machine import TimerKind, TimerRequest
from services.execution.sizing import AssetInfo
from services.execution.state import Chain, ChainState
from shared.broker import order_rules
from shared.broker.models import (
    CancelOutcome,
    CancelResult,
    Order,
    OrderRequest,
    OrderType,
    Position,
    status_of,
)
from shared.trading import Quote, QuoteSource, Side
from tests.unit.execution.machine_run import T0
from tests.unit.execution.test_decide import POLICY, WORKFLOW

OLDER_ALPACA_ID_LIMIT = 48
MAX_STEPS = 60
NINE_DECIMALS = Decimal("0.000000001")


@dataclass(frozen=True)
class Market:
    """What the broker shows the chain: the quote, the asset, the holding, and how much of the
    first order fills before the chain's first poll (a fraction of it)."""

    side: Side
    bid: Decimal
    ask: Decimal
    fractionable: bool
    trade_amount: Decimal
    """Signed as the plan gives it: positive buys, negative sells."""
    held: Decimal | None = None
    liquidation: bool = False
    first_fill: Decimal = Decimal(0)


@dataclass
class RuleCheckingBroker:
    """Answers every command the chain asks; each order submitted is checked against Alpaca's
    rules as it arrives, as the loopback and the simulated broker check it."""

    market: Market
    now: datetime = T0
    sent: list[OrderRequest] = field(default_factory=list)
    closes: int = 0
    refusals: list[tuple[str, OrderRequest]] = field(default_factory=list)
    """Each refused order with the rule (or `client_order_id_over_48`)."""
    chain: Chain | None = None
    """The chain as it ended."""
    orders: dict[str, Order] = field(default_factory=dict)

    def quote(self) -> Quote:
        return Quote(
            symbol="AAA",
            bid=self.market.bid,
            ask=self.market.ask,
            bid_size=Decimal(100),
            ask_size=Decimal(100),
            as_of=self.now,
            source=QuoteSource.REST,
        )

    def answer(self, asked: Command) -> Observation:
        match asked:
            case ReadQuote():
                return QuoteRead(asked, self.quote())
            case ReadLastTrade():
                return LastTradeRead(asked, (self.market.bid + self.market.ask) / 2)
            case ReadSizingFacts():
                return SizingFactsRead(
                    asked, AssetInfo(True, self.market.fractionable), self.position()
                )
            case ReadBuyingPower():
                return BuyingPowerRead(asked, self.quote(), Decimal(10_000_000))
            case LookUpOrder():
                found = next(
                    (o for o in self.orders.values() if o.client_order_id == asked.client_order_id),
                    None,
                )
                return OrderLookedUp(asked, found)
            case SubmitOrder():
                return SubmitAnswered(asked, self.submit(asked.request))
            case FindClose():
                return CloseFound(asked)
            case ClosePosition():
                self.closes += 1
                return CloseAnswered(asked, self.close())
            case ReadOrder():
                return OrderRead(asked, self.read(asked.broker_order_id))
            case CancelOrder():
                order = self.orders[asked.broker_order_id]
                self.orders[order.order_id] = self._with(order, "canceled", order.filled_qty)
                return CancelAnswered(
                    asked,
                    CancelResult(order_id=order.order_id, outcome=CancelOutcome.REQUESTED),
                )

    def position(self) -> Position | None:
        if self.market.held is None:
            return None
        return Position(
            symbol="AAA",
            qty=self.market.held,
            qty_available=self.market.held,
            market_value=self.market.held * self.market.bid,
            avg_entry_price=self.market.bid,
            current_price=self.market.bid,
        )

    def submit(self, request: OrderRequest) -> Order:
        self.sent.append(request)
        arriving = order_rules.NewOrder(
            symbol=request.symbol,
            side=request.side,
            qty=request.qty,
            order_type=request.order_type,
            limit_price=request.limit_price,
            client_order_id=request.client_order_id,
            fractionable=self.market.fractionable,
            bid=self.market.bid,
            ask=self.market.ask,
            equity=Decimal(10_000_000),
        )
        refusal = order_rules.refusal(arriving)
        if refusal is not None:
            self.refusals.append((refusal.rule.value, request))
        if len(request.client_order_id) > OLDER_ALPACA_ID_LIMIT:
            self.refusals.append(("client_order_id_over_48", request))
        order = Order(
            order_id=f"ord-{len(self.orders) + 1}",
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            qty=request.qty,
            limit_price=request.limit_price,
            status=status_of("new", Decimal(0), request.qty),
            broker_status="new",
            filled_qty=Decimal(0),
            filled_avg_price=None,
            submitted_at=self.now,
            updated_at=self.now,
        )
        self.orders[order.order_id] = order
        return order

    def read(self, order_id: str) -> Order:
        """The first order fills its share at the first read (whole shares of a whole-share
        asset); later orders never fill, so the chain goes through every re-peg and the market
        order."""
        order = self.orders[order_id]
        if order_id == "ord-1" and order.filled_qty == 0 and self.market.first_fill > 0:
            step = NINE_DECIMALS if self.market.fractionable else Decimal(1)
            filled = (order.qty * self.market.first_fill).quantize(step, ROUND_DOWN)
            if filled > 0:
                word = "filled" if filled >= order.qty else "partially_filled"
                order = self._with(order, word, filled)
                self.orders[order_id] = order
        return order

    def close(self) -> Order:
        held = self.market.held or Decimal(0)
        order = Order(
            order_id="close-1",
            client_order_id="broker-chosen",
            symbol="AAA",
            side=Side.SELL,
            order_type=OrderType.MARKET,
            qty=held,
            limit_price=None,
            status=status_of("filled", held, held),
            broker_status="filled",
            filled_qty=held,
            filled_avg_price=self.market.bid,
            submitted_at=self.now,
            updated_at=self.now,
        )
        self.orders[order.order_id] = order
        return order

    def _with(self, order: Order, word: str, filled: Decimal) -> Order:
        price = order.limit_price or self.market.ask
        return order.model_copy(
            update={
                "broker_status": word,
                "status": status_of(word, filled, order.qty),
                "filled_qty": filled,
                "filled_avg_price": price if filled > 0 else None,
            }
        )


def run_chain(market: Market) -> RuleCheckingBroker:
    """Drive one chain from its first price to its end, firing each timer it arms when due."""
    broker = RuleCheckingBroker(market)
    chain = Chain(
        key=f"{market.side}:AAA",
        symbol="AAA",
        side=market.side,
        trade_amount=market.trade_amount,
        liquidation=market.liquidation,
        pricing_started_at=T0,
    )
    timers = [TimerRequest(chain.key, TimerKind.PRICE, T0)]
    for _ in range(MAX_STEPS):
        if chain.ended or not timers:
            broker.chain = chain
            return broker
        timers.sort(key=lambda timer: timer.due_at)
        timer, *timers = timers
        broker.now = max(broker.now, timer.due_at)
        observation: Observation = TimerFired(timer.kind, timer.payload.get("reason", "fallback"))
        while True:
            decision = decide(WORKFLOW, chain, observation, broker.now, POLICY)
            chain = decision.chain
            timers += list(decision.timers)
            if decision.command is None:
                break
            observation = broker.answer(decision.command)
    raise AssertionError(f"the chain did not end in {MAX_STEPS} steps: {chain}")


def assert_accepted(market: Market) -> RuleCheckingBroker:
    broker = run_chain(market)
    assert broker.refusals == []
    return broker


def d(text: str) -> Decimal:
    return Decimal(text)


TABLE = {
    "a BUY of whole shares above $1": Market(Side.BUY, d("100.00"), d("100.50"), False, d(1005)),
    "a BUY of fractional shares above $1": Market(
        Side.BUY, d("187.33"), d("187.41"), True, d("1234.56")
    ),
    "a BUY of a sub-$1 stock in whole shares": Market(
        Side.BUY, d("0.4512"), d("0.4530"), False, d("250")
    ),
    "a BUY of a sub-$1 stock in fractions": Market(
        Side.BUY, d("0.0731"), d("0.0745"), True, d("99.99")
    ),
    "a BUY across $1": Market(Side.BUY, d("0.99"), d("1.01"), True, d("50")),
    "a BUY worth just over $1 at the ask": Market(
        Side.BUY, d("100.00"), d("100.50"), True, d("1.01")
    ),
    "a BUY worth $1.50 at a wide spread": Market(
        Side.BUY, d("90.00"), d("110.00"), True, d("1.50")
    ),
    "a SELL of whole shares above $1": Market(
        Side.SELL, d("100.00"), d("100.50"), False, d(-1005), held=d(50)
    ),
    "a SELL of fractional shares": Market(
        Side.SELL, d("55.10"), d("55.16"), True, d("-300.25"), held=d("17.123456789")
    ),
    "a SELL worth just over $1": Market(
        Side.SELL, d("100.00"), d("100.50"), True, d("-1.02"), held=d(3)
    ),
    "a SELL of a sub-$1 stock": Market(
        Side.SELL, d("0.5123"), d("0.5150"), True, d("-40"), held=d(500)
    ),
    "a full exit of a 9-decimal holding": Market(
        Side.SELL,
        d("310.05"),
        d("310.25"),
        True,
        d("-2240.88"),
        held=d("7.227357612"),
        liquidation=True,
    ),
    "a full exit of a fractional whole-share holding": Market(
        Side.SELL, d("98.00"), d("98.20"), False, d("-29.40"), held=d("0.3"), liquidation=True
    ),
    "a BUY whose first order fills 99.5 %": Market(
        Side.BUY, d("100.00"), d("100.50"), True, d("250"), first_fill=d("0.995")
    ),
    "a SELL whose first order fills all but a few cents": Market(
        Side.SELL, d("50.00"), d("50.04"), True, d("-100"), held=d(10), first_fill=d("0.97")
    ),
}


@pytest.mark.parametrize("market", TABLE.values(), ids=TABLE.keys())
def test_every_order_of_a_chain_passes_alpacas_rules(market: Market) -> None:
    broker = assert_accepted(market)

    assert broker.sent or broker.closes, "the row should send at least one order"


def test_the_table_reaches_every_kind_of_order_it_means_to() -> None:
    chains = [run_chain(market).sent for market in TABLE.values()]
    sent = [request for chain in chains for request in chain]
    limits = [r.limit_price for r in sent if r.limit_price is not None]

    assert {r.order_type for r in sent} == {OrderType.LIMIT, OrderType.MARKET}
    assert any(price < 1 for price in limits) and any(price >= 1 for price in limits)
    assert any(r.qty != r.qty.to_integral_value() for r in sent)
    assert any(order_rules.decimals(r.qty) == 9 for r in sent)
    assert all(len({r.client_order_id for r in chain}) == len(chain) for chain in chains)


def test_a_fractional_order_worth_under_1_at_its_limit_is_not_sent() -> None:
    """$1.00 at the mid of 90/110 is 0.01 shares; at the limit 90.01 they are worth $0.90, which
    Alpaca refuses: the chain is skipped with the reason instead."""
    broker = run_chain(Market(Side.BUY, d("90.00"), d("110.00"), True, d("1.00")))

    assert broker.sent == [] and broker.chain is not None
    assert broker.chain.state is ChainState.SKIPPED
    assert "under the broker's $1 minimum" in (broker.chain.error_message or "")


def test_a_sell_remainder_worth_under_1_at_its_re_peg_price_is_not_sent() -> None:
    """The remainder is worth just over $1 at the bid, but under it at the re-peg price below
    the bid: the chain ends filled with what it sold."""
    broker = run_chain(
        Market(Side.SELL, d("5.00"), d("5.04"), True, d("-100"), held=d(20), first_fill=d("0.99"))
    )

    assert broker.refusals == [] and broker.chain is not None
    assert broker.chain.state is ChainState.FILLED
    assert [r.order_type for r in broker.sent] == [OrderType.LIMIT]


PRICES = st.decimals(min_value=d("0.0100"), max_value=d("2000"), places=4)


@st.composite
def markets(draw: st.DrawFn) -> Market:
    side = draw(st.sampled_from([Side.BUY, Side.SELL]))
    bid = draw(PRICES)
    if bid >= 1:
        bid = bid.quantize(d("0.01"))
    spread = draw(st.decimals(min_value=d("0.0001"), max_value=d("0.05"), places=4))
    ask = bid + spread if bid + spread < 1 else (bid + spread).quantize(d("0.01"))
    if ask <= bid:
        ask = bid + d("0.01")
    amount = draw(st.decimals(min_value=d("0.50"), max_value=d("50000"), places=2))
    fractionable = draw(st.booleans())
    first_fill = draw(st.sampled_from([d(0), d("0.5"), d("0.9"), d("0.99"), d("0.999")]))
    if side is Side.BUY:
        return Market(side, bid, ask, fractionable, amount, first_fill=first_fill)
    held = draw(st.decimals(min_value=d("0.001"), max_value=d("5000"), places=9))
    liquidation = draw(st.booleans())
    if liquidation:
        amount = held * bid
    return Market(
        side,
        bid,
        ask,
        fractionable,
        -min(amount, (held * bid).quantize(d("0.01"), ROUND_DOWN)),
        held=held,
        liquidation=liquidation,
        first_fill=first_fill,
    )


@settings(max_examples=300, deadline=None)
@given(markets())
def test_no_market_makes_execution_send_an_order_alpaca_refuses(market: Market) -> None:
    assert_accepted(market)


def test_a_refused_form_is_caught_by_this_harness() -> None:
    """The harness itself finds a refused form: a BUY limit with a sub-penny price."""
    broker = RuleCheckingBroker(TABLE["a BUY of whole shares above $1"])

    broker.submit(
        OrderRequest(
            symbol="AAA",
            side=Side.BUY,
            qty=Decimal(1),
            order_type=OrderType.LIMIT,
            limit_price=d("100.005"),
            client_order_id="alc:" + "0" * 45,
        )
    )

    assert [rule for rule, _ in broker.refusals] == [
        "sub_penny_limit_price",
        "client_order_id_over_48",
    ]
