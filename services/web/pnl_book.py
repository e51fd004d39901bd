"""The overview's P&L: one document per account made from the P&L projection
(`services.pnl.PnlLedger`), which the web service keeps as a state document moved on by the same
page fold and checkpoint as its read models (docs/web.md, Read models) — so a page reads a few
small documents and never replays the store.

Pure: no I/O. Money stays a decimal string, marked at the last recorded valuation (the last
plan's prices), as the email values a run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from services.pnl import PnlLedger
from services.web.fold import ReadModel

PNL = "pnl"


def pnl_models(ledger: PnlLedger, accounts: Iterable[str]) -> Iterator[ReadModel]:
    """Since-inception P&L of each of `accounts` that has a recorded plan."""
    for account in sorted(set(accounts)):
        view = ledger.view(account)
        if view is None:
            continue
        yield ReadModel(
            projection=PNL,
            key=account,
            account_id=account,
            workflow_id="",
            at=dt.datetime.combine(
                dt.date.fromisoformat(view.as_of), dt.time(), dt.UTC
            ).isoformat(),
            status=None,
            document={
                "as_of": view.as_of,
                "starting_equity": str(view.starting_equity),
                "equity": str(view.equity),
                "pnl": str(view.pnl),
                "day_pnl": str(view.day_pnl),
                "realised": str(view.realised),
                "unrealised": str(view.unrealised),
                "fees": str(view.fees),
                "by_strategy": {name: str(amount) for name, amount in view.by_strategy.items()},
            },
        )
