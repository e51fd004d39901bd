"""`alchemiser broker orders|positions|account`: the simulated broker's state as stored in the
database of ALCHEMISER_DATABASE_URL (docs/trading-rules.md, Simulated state), for people and for
tools."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.commands.settings import settings_or_exit
from shared.decimal_places import Places, shown

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from shared.settings import Settings

broker_app = typer.Typer(
    help="The simulated broker's orders, positions and account, read from the database.",
    no_args_is_help=True,
)

DEFAULT_ACCOUNT = "default"


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


WorkflowOption = Annotated[
    str | None, typer.Option("--workflow", help="Only the orders of this workflow id.")
]
AccountOption = Annotated[str, typer.Option("--account", help="The simulated account.")]
AllAccountsOption = Annotated[
    str | None, typer.Option("--account", help="Only this simulated account (default: all).")
]
FormatOption = Annotated[OutputFormat, typer.Option("--format", help="text or json.")]


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


async def _read(settings: Settings, query: Any) -> Any:
    """Run `query(connection)` on the configured database; a database without the simulated
    broker's tables, or one that does not answer, is an event store error naming it."""
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import create_async_engine

    from shared.eventstore.errors import DatabaseNotMigratedError, EventStoreUnavailableError
    from shared.eventstore.migrations import UNREACHABLE_HINT, UPGRADE_HINT, describe

    url = settings.resolved_database_url
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await query(connection)
    except OSError as error:
        raise EventStoreUnavailableError(
            f"cannot reach {describe(url)} ({error}); {UNREACHABLE_HINT}"
        ) from None
    except DBAPIError as error:
        if isinstance(error.orig, OSError):
            raise EventStoreUnavailableError(
                f"cannot reach {describe(url)} ({error.orig}); {UNREACHABLE_HINT}"
            ) from None
        raise DatabaseNotMigratedError(
            f"cannot read the simulated broker's state in {describe(url)} "
            f"({type(error.orig).__name__}: {error.orig}); {UPGRADE_HINT} first "
            "or check ALCHEMISER_DATABASE_URL"
        ) from None
    finally:
        await engine.dispose()


def _print(records: list[dict[str, Any]] | dict[str, Any], output: OutputFormat) -> None:
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(records, indent=2))
        return
    rows = records if isinstance(records, list) else [records]
    if not rows:
        typer.echo("(none)")
        return
    columns = list(rows[0])
    table = [columns] + [["-" if row[c] is None else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))


@broker_app.command("orders")
def orders(workflow: WorkflowOption = None, output: FormatOption = OutputFormat.TEXT) -> None:
    """Every order the simulated broker holds, in placement order, with the workflow whose
    recorded `OrderRequested` names it."""
    from shared.broker.simulated import ledger
    from shared.eventstore.workflow_queries import requested_orders

    async def query(connection: AsyncConnection) -> list[dict[str, Any]]:
        workflows = await requested_orders(connection, workflow)
        rows = await ledger.order_rows(
            connection, client_order_ids=None if workflow is None else workflows.keys()
        )
        return [
            {
                "client_order_id": row.client_order_id,
                "workflow_id": workflows.get(row.client_order_id),
                "symbol": row.symbol,
                "side": row.side,
                "qty": _decimal(row.qty),
                "status": ledger.order_status(row).value,
                "filled_qty": _decimal(row.filled_qty),
                "filled_avg_price": _decimal(row.filled_avg_price),
            }
            for row in rows
        ]

    _print(asyncio.run(_read(settings_or_exit(), query)), output)


@broker_app.command("positions")
def positions(account: AllAccountsOption = None, output: FormatOption = OutputFormat.TEXT) -> None:
    """Open positions, valued at the last price the broker marked them at, with their cost: the
    FIFO lots of the recorded fills (docs/trading-rules.md, Profit and loss), so the unrealised
    P&L is this system's, not the broker's average price's."""
    from services.pnl import PnlLedger
    from shared.broker.simulated import ledger
    from shared.eventstore.store import SqlEventStore

    settings = settings_or_exit()

    async def query(connection: AsyncConnection) -> list[dict[str, Any]]:
        rows = await ledger.position_rows(connection, account)
        store = SqlEventStore(settings.resolved_database_url)
        try:
            books = (await PnlLedger.rebuild(store)).books
        finally:
            await store.close()
        listed = []
        for row in rows:
            value = ledger.market_value(row)
            book = books.get(row.account_id)
            cost = book.cost_basis(row.symbol) if book and row.symbol in book.lots else None
            listed.append(
                {
                    "account_id": row.account_id,
                    "symbol": row.symbol,
                    "qty": _decimal(row.qty),
                    "avg_entry_price": _decimal(row.avg_entry_price),
                    "cost_basis": None if cost is None else shown(cost, Places.MONEY),
                    "market_value": _decimal(value),
                    "unrealised": None if cost is None else shown(value - cost, Places.MONEY),
                }
            )
        return listed

    _print(asyncio.run(_read(settings, query)), output)


@broker_app.command("account")
def account(
    account: AccountOption = DEFAULT_ACCOUNT, output: FormatOption = OutputFormat.TEXT
) -> None:
    """Cash, equity and buying power. An account that never traded does not exist yet: the
    simulated broker opens it with the starting cash on its first order."""
    from services.commands.failures import CommandFailedError
    from shared.broker.simulated import ledger

    async def query(connection: AsyncConnection) -> dict[str, Any]:
        state = await ledger.account_state(connection, account)
        if state is None:
            raise CommandFailedError(
                f"account {account!r} does not exist yet: the simulated broker opens it with "
                f"ALCHEMISER_SIM_STARTING_CASH on its first run (`alchemiser run --account "
                f"{account}`); `alchemiser broker positions` lists the accounts holding positions"
            )
        return {
            "account_id": state.account_id,
            "cash": _decimal(state.cash),
            "equity": _decimal(state.equity),
            "buying_power": _decimal(state.buying_power),
        }

    _print(asyncio.run(_read(settings_or_exit(), query)), output)
