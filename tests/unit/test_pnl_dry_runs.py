"""The P&L fold leaves dry runs out (docs/trading-rules.md, Dry runs): their plans are no
valuation and open no book, so a dry run never moves an account's P&L."""

from __future__ import annotations

from datetime import UTC, datetime

from services.pnl import PnlLedger
from shared.events import Event
from shared.eventstore.records import RecordedEvent
from shared.workflow import DRY_RUN_ID_PREFIX
from tests.unit.notify import workflows


def folded(events: list[Event]) -> PnlLedger:
    ledger = PnlLedger()
    for position, event in enumerate(events, start=1):
        ledger.apply(
            RecordedEvent(
                position, f"{event.correlation_id}/test", position, event, datetime.now(UTC)
            )
        )
    return ledger


def test_a_dry_runs_plan_opens_no_book_and_values_nothing() -> None:
    dry = workflows.Workflow(f"{DRY_RUN_ID_PREFIX}1").started(dry_run=True).signal().planned()
    assert folded(dry.previewed().completed().events).view("default") is None

    run = workflows.Workflow("run-1").started().signal().planned().executed().completed()
    alone = folded(run.events).view("default")
    with_dry_run = folded([*run.events, *dry.events]).view("default")
    assert alone is not None and with_dry_run == alone
