"""`alchemiser pnl [--account ID] [--since DATE] [--format table|json]`: an account's P&L from the
event store (docs/trading-rules.md, Profit and loss), its open positions marked at the broker's
price now and everything else at the last recorded valuation."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from services.commands.settings import settings_or_exit

if TYPE_CHECKING:
    from services.pnl import PnlView
    from shared.settings import Settings


class PnlFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def pnl(
    account: Annotated[str, typer.Option("--account", help="The account.")] = "default",
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only from this trading date on (YYYY-MM-DD)."),
    ] = None,
    output: Annotated[PnlFormat, typer.Option("--format", help="table or json.")] = (
        PnlFormat.TABLE
    ),
) -> None:
    """Daily and since-inception P&L: realised and unrealised from FIFO lots of the recorded
    fills, fees, and each strategy's share with what no strategy owns."""
    from services.commands.failures import CommandFailedError, OptionError
    from shared.decimal_places import view

    start = None
    if since is not None:
        try:
            start = date.fromisoformat(since)
        except ValueError:
            raise OptionError(f"--since {since!r} is not a date; give it as YYYY-MM-DD") from None
    settings = settings_or_exit()
    shown, note = asyncio.run(_view(settings, account, start))
    if shown is None:
        raise CommandFailedError(
            f"account {account!r} has no recorded plan in the event store, so no P&L yet: it "
            f"starts with its first run (`alchemiser run --account {account}`)"
        )
    if note:
        typer.echo(f"note: {note}", err=True)
    if output is PnlFormat.JSON:
        typer.echo(json.dumps(view(shown.as_dict()), indent=2))
    else:
        typer.echo(table(shown))


async def _view(settings: Settings, account: str, since: date | None) -> tuple[PnlView | None, str]:
    """The view marked at the broker's current prices; at the recorded ones, with a note saying
    so, when the broker cannot be read."""
    from services.pnl import PnlLedger
    from shared import market_clock
    from shared.broker.errors import BrokerError
    from shared.broker.factory import BrokerFactory
    from shared.broker.request_budget import BudgetShare
    from shared.eventstore.store import SqlEventStore
    from shared.marketdata.barstore import BarStore

    store = SqlEventStore(settings.resolved_database_url)
    try:
        ledger = await PnlLedger.rebuild(store)
    finally:
        await store.close()
    if account not in ledger.books:
        return None, ""
    bars = BarStore(settings.data_dir)
    now = market_clock.market_now(settings, bars.last_session() if bars.exists() else None)
    brokers = BrokerFactory(settings, share=BudgetShare.PORTFOLIO)
    try:
        positions = await brokers(account).get_positions()
    except BrokerError as error:
        note = f"the broker could not be read ({error}); positions are marked at recorded prices"
        return ledger.view(account, since=since), note
    finally:
        await brokers.close()
    marks = {p.symbol: p.current_price for p in positions if p.current_price is not None}
    today = now.astimezone(market_clock.NEW_YORK).date()
    return ledger.view(account, since=since, marks=marks, as_of=today), ""


def money(value: Decimal) -> str:
    return f"{value:,.2f}"


def table(shown: PnlView) -> str:
    period = f"since {shown.since}" if shown.since else "since inception"
    lines = [
        f"account {shown.account_id}, {period}, to {shown.as_of}",
        f"  starting equity  {money(shown.starting_equity):>14}",
        f"  realised         {money(shown.realised):>14}",
        f"  unrealised       {money(shown.unrealised):>14}",
        f"  fees             {money(shown.fees):>14}",
        f"  equity           {money(shown.equity):>14}",
        f"  P&L              {money(shown.pnl):>14}   day {money(shown.day_pnl)}",
        "",
        "by strategy",
        *(f"  {name:<24} {money(amount):>14}" for name, amount in shown.by_strategy.items()),
        "",
        "by day              P&L        realised        fees          equity",
        *(
            f"  {day.date}  {money(day.pnl):>12}  {money(day.realised):>12}  "
            f"{money(day.fees):>10}  {money(day.equity):>14}"
            for day in shown.days
        ),
        "",
        "positions  qty               cost        price          value     unrealised",
        *(
            f"  {p.symbol:<7} {p.qty:>14.6f} {money(p.cost_basis):>12} {p.price:>10.4f} "
            f"{money(p.market_value):>14} {money(p.unrealised):>12}"
            for p in shown.positions
        ),
    ]
    if shown.unmatched:
        sold = ", ".join(f"{symbol} {qty}" for symbol, qty in shown.unmatched.items())
        lines.append(f"note: sold beyond the recorded lots, at no recorded cost: {sold}")
    return "\n".join(lines)
