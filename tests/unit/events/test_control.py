"""The halt fold (docs/trading-rules.md, Halt): the latest halt or resume covering an account
decides, whether it names the account or every account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.events import Event
from shared.events.control import EVERY_ACCOUNT, TradingHalted, TradingResumed, halt_of

START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def control(kind: type[TradingHalted | TradingResumed], account: str, minute: int) -> Event:
    return kind(
        correlation_id=f"c{minute}",
        account_id=account,
        occurred_at=START + timedelta(minutes=minute),
        source="strategy",
        reason=f"reason {minute}",
        requested_by="test",
    )


def test_nothing_recorded_is_not_halted() -> None:
    assert halt_of([], "default") is None


def test_a_halt_of_every_account_covers_each_until_its_own_resume() -> None:
    events = [control(TradingHalted, EVERY_ACCOUNT, 1), control(TradingResumed, "a", 2)]
    halt = halt_of(events, "b")
    assert halt is not None and halt.reason == "reason 1"
    assert halt.refusal() == (
        "halted since 2026-03-02T15:01:00+00:00: reason 1; resume with `alchemiser resume`"
    )
    assert halt_of(events, "a") is None


def test_a_later_resume_of_every_account_ends_every_halt() -> None:
    events = [control(TradingHalted, "a", 1), control(TradingResumed, EVERY_ACCOUNT, 2)]
    assert halt_of(events, "a") is None
    again = [*events, control(TradingHalted, "a", 3)]
    halt = halt_of(again, "a")
    assert halt is not None and halt.since == START + timedelta(minutes=3)
    assert halt_of(again, "b") is None
