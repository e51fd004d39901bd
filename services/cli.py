"""`alchemiser ...`: one typer app; each command module imports its heavy dependencies lazily,
so `alchemiser evaluate` starts without loading any service framework."""

from __future__ import annotations

import typer

from services.commands.backtest import backtest
from services.commands.broker import broker_app
from services.commands.data import data_app
from services.commands.db import db_app
from services.commands.evaluate import evaluate
from services.commands.events import events
from services.commands.failures import run_command
from services.commands.halt import halt, resume
from services.commands.pnl import pnl
from services.commands.projections import projections_app
from services.commands.replay import replay
from services.commands.run import run
from services.commands.serve import serve
from services.commands.trigger import trigger
from services.commands.web import web

app = typer.Typer(
    name="alchemiser",
    help="Multi-strategy trading system: evaluate symphonies, run and serve the services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("backtest")(backtest)
app.add_typer(broker_app, name="broker")
app.command("evaluate")(evaluate)
app.command("events")(events)
app.command("halt")(halt)
app.command("pnl")(pnl)
app.command("replay")(replay)
app.command("resume")(resume)
app.command("run")(run)
app.command("serve")(serve)
app.command("trigger")(trigger)
app.command("web")(web)
app.add_typer(db_app, name="db")
app.add_typer(data_app, name="data")
app.add_typer(projections_app, name="projections")


def main() -> None:
    run_command(app)


if __name__ == "__main__":
    main()
