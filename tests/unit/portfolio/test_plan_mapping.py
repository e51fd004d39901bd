"""The mappings between events and the planner: planning from a recorded snapshot gives the
plan the live run made from the same broker reads, and the plan maps back to its document."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from services.portfolio import plan_mapping
from services.portfolio.planner import plan_rebalance
from shared.broker.models import Position
from shared.events.market import AccountSnapshot
from shared.trading import Quote, QuoteSource
from tests.unit.events.examples import signal_generated

NOW = dt.datetime(2026, 3, 2, 20, 46, tzinfo=dt.UTC)
RESERVE = Decimal("0.01")
MIN_TRADE = Decimal("0.01")


def broker_quote(symbol: str, bid: str, ask: str) -> Quote:
    return Quote(
        symbol=symbol,
        bid=Decimal(bid),
        ask=Decimal(ask),
        bid_size=Decimal(100),
        ask_size=Decimal(100),
        as_of=NOW,
        source=QuoteSource.REST,
    )


def test_a_recorded_snapshot_plans_exactly_as_the_broker_reads_it_was_made_from() -> None:
    signal = signal_generated()
    quotes = [broker_quote("SPY", "500.00", "500.10"), broker_quote("TQQQ", "60.00", "60.02")]
    live = plan_mapping.planning_account(
        Decimal("5000"), Decimal("10000"), {"SPY": Decimal(10)}, quotes
    )
    live_plan = plan_rebalance(
        live, plan_mapping.target_weights(signal), RESERVE, min_trade_fraction=MIN_TRADE
    )
    held = Position(
        symbol="SPY",
        qty=Decimal(10),
        qty_available=Decimal(10),
        avg_entry_price=Decimal(450),
        current_price=Decimal("500.05"),
        market_value=Decimal("5000.50"),
    )
    recorded = AccountSnapshot(
        cash=Decimal("5000"),
        portfolio_value=Decimal("10000"),
        positions=(plan_mapping.position_fact(held, live_plan),),
        quotes=tuple(quotes),
        as_of=NOW,
    )

    replayed = plan_rebalance(
        plan_mapping.recorded_account(recorded),
        plan_mapping.target_weights(signal),
        RESERVE,
        min_trade_fraction=MIN_TRADE,
    )

    assert replayed == live_plan
    document = plan_mapping.plan_document(
        signal, "+".join(signal.consolidated_portfolio.source_strategies), live_plan, 1, NOW
    )
    assert [item.symbol for item in document.items] == [item.symbol for item in live_plan.items]
    assert document.causation_id == str(signal.event_id)


def test_quotes_the_recording_lacks_are_added_without_replacing_recorded_ones() -> None:
    recorded = AccountSnapshot(
        cash=Decimal("1000"),
        portfolio_value=Decimal("1000"),
        quotes=(broker_quote("SPY", "500.00", "500.10"),),
        as_of=NOW,
    )

    account = plan_mapping.recorded_account(recorded, [broker_quote("TQQQ", "60.00", "60.02")])

    assert set(account.quotes) == {"SPY", "TQQQ"}
    assert account.quotes["SPY"].bid == Decimal("500.00")
