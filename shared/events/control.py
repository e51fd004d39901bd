"""The kill switch's events and the one fold that says whether an account is halted
(docs/trading-rules.md, Halt).

Every halt and resume is appended to one stream, `control`, and an account's halt state is the
fold of that stream: the latest `TradingHalted` or `TradingResumed` that covers the account
(its own, or one for every account) decides. Every service reads the same stream, so the
trigger, execution and the CLI cannot disagree about whether an account is halted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.events.envelope import Event
from shared.events.types import NonEmptyStr

CONTROL_STREAM = "control"
EVERY_ACCOUNT = "*"
"""The `account_id` of a halt or resume that covers every account of the installation; no
account id can be `*` (they start with a letter or digit)."""


class TradingHalted(Event):
    """Trading stopped for `account_id` (or every account). `accounts` are the accounts known
    when it was recorded, whose open orders execution cancels; `liquidations` the liquidation
    workflow started for each, when asked to sell everything."""

    event_type: Literal["TradingHalted"] = "TradingHalted"
    schema_version: Literal[1] = 1
    reason: NonEmptyStr
    requested_by: NonEmptyStr
    accounts: tuple[NonEmptyStr, ...] = ()
    liquidations: dict[str, str] = Field(default_factory=dict)
    """Account id → the liquidation workflow's id."""
    liquidation_refused: str | None = None
    """Why `--liquidate` started no liquidation (the market closed, the close guard)."""


class TradingResumed(Event):
    event_type: Literal["TradingResumed"] = "TradingResumed"
    schema_version: Literal[1] = 1
    reason: NonEmptyStr
    requested_by: NonEmptyStr


class HaltOrdersCancelled(Event):
    """Execution's answer to a halt for one account: the orders of this system it found open
    and asked the broker to cancel, and the ones whose cancel failed."""

    event_type: Literal["HaltOrdersCancelled"] = "HaltOrdersCancelled"
    schema_version: Literal[1] = 1
    cancelled: tuple[NonEmptyStr, ...] = ()
    """Client order ids."""
    failed: tuple[NonEmptyStr, ...] = ()
    """`client order id: the broker's error`."""


ControlEvent = TradingHalted | TradingResumed


@dataclass(frozen=True)
class Halt:
    """An account is halted: since when, why and by which event."""

    since: datetime
    reason: str
    event: TradingHalted

    def refusal(self) -> str:
        """The words a refused workflow is answered with (HTTP 409, `alchemiser trigger`)."""
        return (
            f"halted since {self.since.isoformat()}: {self.reason}; resume with `alchemiser resume`"
        )


def halt_of(events: Sequence[Event], account_id: str) -> Halt | None:
    """The halt in force for `account_id` after `events` (the control stream, in order); None
    when trading is allowed. The latest halt or resume covering the account decides."""
    latest: ControlEvent | None = None
    for event in events:
        if isinstance(event, TradingHalted | TradingResumed) and event.account_id in (
            account_id,
            EVERY_ACCOUNT,
        ):
            latest = event
    if isinstance(latest, TradingHalted):
        return Halt(latest.occurred_at, latest.reason, latest)
    return None
