"""The overview's P&L: a part of each account's document made from the P&L projection
(`services.pnl.PnlLedger`), which the web service keeps in memory, moved on by the same page
fold as its read models and saved as a state document in the transaction of a checkpoint
(docs/web.md, Read models) — so a page reads one document per account and never replays the
store.

Pure: no I/O. Money stays a decimal string, marked at the last recorded valuation (the last
plan's prices), as the email values a run.
"""

from __future__ import annotations

from typing import Any

from services.pnl import PnlLedger


def pnl_document(ledger: PnlLedger, account: str) -> dict[str, Any] | None:
    """Since-inception P&L of the account; None before its first recorded plan."""
    view = ledger.view(account)
    if view is None:
        return None
    return {
        "as_of": view.as_of,
        "starting_equity": str(view.starting_equity),
        "equity": str(view.equity),
        "pnl": str(view.pnl),
        "day_pnl": str(view.day_pnl),
        "realised": str(view.realised),
        "unrealised": str(view.unrealised),
        "fees": str(view.fees),
        "by_strategy": {name: str(amount) for name, amount in view.by_strategy.items()},
    }
