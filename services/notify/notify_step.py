"""The notify step: on `WorkflowCompleted` or `WorkflowFailed` (deadline included), one report
per configured channel, built from the workflow's events in the store, and one
`NotificationSent` per channel (per URL for apprise) (docs/trading-rules.md, Report trigger).
A halt or a resume is announced the same way, once per channel.

Exactly one email per workflow: a channel that already has a `NotificationSent` in the
workflow's events is not sent again, whether the second trigger is a late failure after a
completion or a redelivery. Within one process, a channel is also claimed before it is sent, so
two triggers handled at the same time (or a send whose event then failed to commit) cannot
send twice either. The workflow's first ending also moves the business metrics
(`run_metrics.py`), once its handling is committed.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import structlog

from services.notify.channels.port import Notifier
from services.notify.delivery import BACKOFF_S, DELIVERY_ATTEMPTS, Sleep, deliver
from services.notify.halt_notice import halt_notice
from services.notify.rendering import RenderedReport, render_workflow
from services.notify.report import channels_notified
from services.notify.run_metrics import RunMetrics, first_ending, observe_run
from services.pnl import PnlLedger, PnlView
from shared import sent_reports
from shared.events import (
    Event,
    EventDecodeError,
    NotificationSent,
    WorkflowCompleted,
    WorkflowFailed,
)
from shared.events.control import TradingHalted, TradingResumed
from shared.eventstore.store import UnitOfWork
from shared.messaging.consumer import HandlerContext, HandlerOutcome
from shared.settings import Settings
from shared.workflow import workflow_state

log = structlog.get_logger(__name__)

CLAIMS_KEPT = 10_000
"""Recent (workflow, channel, target) claims remembered in memory; older ones are in the store."""


class NotifyStep:
    def __init__(
        self,
        settings: Settings,
        notifiers: Sequence[Notifier],
        *,
        sleep: Sleep = asyncio.sleep,
        attempts: int = DELIVERY_ATTEMPTS,
        backoff_s: float = BACKOFF_S,
        metrics: RunMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._notifiers = tuple(notifiers)
        self._sleep = sleep
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._claimed: OrderedDict[tuple[str, str, str | None], None] = OrderedDict()
        self._pnl = PnlLedger()
        """Maintained in memory: each report folds only the events since the last one (a new
        process folds the store once)."""

    async def handle(self, event: Event, context: HandlerContext) -> HandlerOutcome:
        if isinstance(event, TradingHalted | TradingResumed):
            history = await self._history(event, context)
            notice = halt_notice(event, live=self._settings.is_live)

            async def announcement() -> RenderedReport:
                return notice

            return HandlerOutcome(await self._notify(event, context, history, announcement))
        if not isinstance(event, WorkflowCompleted | WorkflowFailed):
            return HandlerOutcome()
        history = await self._history(event, context)
        if all(recorded.event_id != event.event_id for recorded in history):
            history.append(event)

        async def report() -> RenderedReport:
            return render_workflow(
                history,
                neutral=self._settings.email_neutral_mode,
                default_live=self._settings.is_live,
                pnl=await self._account_pnl(event, context),
            )

        rendered: list[RenderedReport] = []

        async def kept_report() -> RenderedReport:
            rendered.append(await report())
            return rendered[-1]

        workflow = workflow_state(history)
        if workflow is not None and workflow.dry_run:
            # A dry run is reported only when asked and never counts as a run in the business
            # metrics (docs/trading-rules.md, Dry runs)
            notifications = (
                await self._notify(event, context, history, kept_report)
                if workflow.reported
                else []
            )
            return HandlerOutcome(notifications, in_transaction=_kept(event, rendered))
        notifications = await self._notify(event, context, history, kept_report)
        return HandlerOutcome(
            notifications,
            in_transaction=_kept(event, rendered),
            after_commit=self._counted(event, history),
        )

    def _counted(
        self, ending: WorkflowCompleted | WorkflowFailed, history: list[Event]
    ) -> Callable[[], None] | None:
        """The workflow's metrics, once: on its first ending only (a late failure after a
        completion is not a second run), recorded after the handling commits."""
        metrics, first = self._metrics, first_ending(history)
        if metrics is None or first is None or first.event_id != ending.event_id:
            return None
        run = observe_run(history, ending)
        return lambda: metrics.record(run)

    async def _notify(
        self,
        event: Event,
        context: HandlerContext,
        history: list[Event],
        render: Callable[[], Awaitable[RenderedReport]],
    ) -> list[Event]:
        """Deliver what `render` makes on every channel that has not had it for `event`'s
        correlation id (a workflow, or a halt or resume), one `NotificationSent` each."""
        notified = channels_notified(history)
        pending = [
            notifier
            for notifier in self._notifiers
            if (notifier.channel, notifier.target) not in notified
            and self._claim(event.correlation_id, notifier)
        ]
        if not pending:
            if self._notifiers:
                log.info("workflow already notified", event_type=event.event_type)
            return []
        report = await render()
        deliveries = await asyncio.gather(
            *(
                deliver(
                    notifier,
                    report,
                    attempts=self._attempts,
                    backoff_s=self._backoff_s,
                    sleep=self._sleep,
                )
                for notifier in pending
            )
        )
        return [
            context.follow_up(
                event,
                NotificationSent,
                channel=delivery.channel,
                target=delivery.target,
                status=delivery.status,
                attempts=delivery.attempts,
                error=delivery.error,
                metadata={"report": "minimal"} if report.fallback else None,
            )
            for delivery in deliveries
        ]

    async def _account_pnl(self, event: Event, context: HandlerContext) -> PnlView | None:
        """The account's P&L after the run, at its recorded prices; a report without it rather
        than no report when the store cannot be folded (docs/trading-rules.md, Profit and loss)."""
        try:
            await self._pnl.catch_up(context.store)  # idempotent: concurrent catch-ups agree
        except Exception:
            log.exception("P&L could not be folded; reporting without it")
            return None
        return self._pnl.view(event.account_id)

    async def _history(self, event: Event, context: HandlerContext) -> list[Event]:
        """The workflow's recorded events; when one of them cannot be read back, only the ending
        itself, so the owner still gets told how the run ended instead of nothing."""
        try:
            records = await context.store.read_correlation(event.correlation_id)
        except EventDecodeError as error:
            log.error(
                "workflow events unreadable; reporting from the ending alone",
                unreadable_event_id=error.event_id,
                error=str(error),
            )
            return [event]
        return [recorded.event for recorded in records]

    def _claim(self, workflow_id: str, notifier: Notifier) -> bool:
        key = (workflow_id, notifier.channel, notifier.target)
        if key in self._claimed:
            return False
        self._claimed[key] = None
        if len(self._claimed) > CLAIMS_KEPT:
            self._claimed.popitem(last=False)
        return True


def _kept(
    event: Event, rendered: list[RenderedReport]
) -> Callable[[UnitOfWork], Awaitable[None]] | None:
    """Keep the report as sent (`shared.sent_reports`) with the deliveries it was sent in."""
    if not rendered:
        return None
    report = rendered[-1]
    document = {
        "subject": report.subject,
        "text": report.text,
        "html": report.html,
        "fallback": report.fallback,
    }
    return lambda uow: sent_reports.save(uow, event.correlation_id, document)
