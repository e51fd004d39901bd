"""Delivery: three attempts with doubling backoff, and a verdict either way."""

from __future__ import annotations

from services.notify.delivery import deliver
from services.notify.rendering import RenderedReport
from tests.unit.notify.fakes import RecordingNotifier, RecordingSleep

REPORT = RenderedReport(subject="s", html="<p>h</p>", text="t", summary="m")


class ExplodingNotifier:
    @property
    def channel(self) -> str:
        return "webhook"

    @property
    def target(self) -> None:
        return None

    async def send(self, report: RenderedReport) -> None:
        raise RuntimeError("adapter bug")


async def test_first_success_is_one_attempt_and_no_wait() -> None:
    notifier, sleep = RecordingNotifier(), RecordingSleep()

    delivery = await deliver(notifier, REPORT, sleep=sleep)

    assert (delivery.status, delivery.attempts, delivery.error) == ("sent", 1, None)
    assert sleep.waits == []


async def test_a_transient_failure_is_retried_after_a_backoff() -> None:
    notifier, sleep = RecordingNotifier(failures=2), RecordingSleep()

    delivery = await deliver(notifier, REPORT, sleep=sleep)

    assert (delivery.status, delivery.attempts) == ("sent", 3)
    assert sleep.waits == [1.0, 2.0]
    assert notifier.sent == [REPORT]


async def test_three_failures_give_a_failed_verdict_with_the_last_error() -> None:
    notifier, sleep = RecordingNotifier(failures=5), RecordingSleep()

    delivery = await deliver(notifier, REPORT, sleep=sleep)

    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert delivery.error == "email down (call 3)"
    assert notifier.calls == 3
    assert sleep.waits == [1.0, 2.0]


async def test_an_unexpected_adapter_error_is_recorded_not_raised() -> None:
    delivery = await deliver(ExplodingNotifier(), REPORT, sleep=RecordingSleep())  # type: ignore[arg-type]

    assert delivery.status == "failed"
    assert delivery.error == "RuntimeError: adapter bug"
