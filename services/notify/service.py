"""The notify service's event shell: a workflow's ending in, one report per workflow out. The
report's other sections are read from the store when the ending arrives, so notify is bound to
the two endings only."""

from __future__ import annotations

import structlog

from services.notify.channels.apprise_url import AppriseNotifier, targets
from services.notify.channels.port import Notifier
from services.notify.channels.smtp import SmtpNotifier
from services.notify.channels.webhook import WebhookNotifier
from services.notify.notify_step import NotifyStep
from services.notify.run_metrics import RunMetrics
from shared.service.runtime import ServiceDefinition
from shared.settings import Settings
from shared.workflow import HALT_EVENT_TYPES, NOTIFICATION

log = structlog.get_logger(__name__)


def configured_notifiers(settings: Settings) -> list[Notifier]:
    """The channels the settings turn on; says once, at start, which are off and why."""
    notifiers: list[Notifier] = []
    if settings.smtp_host:
        notifiers.append(SmtpNotifier(settings))
    else:
        log.info("email disabled: ALCHEMISER_SMTP_HOST is not set")
    if settings.webhook_url:
        notifiers.append(WebhookNotifier(settings.webhook_url))
    urls = settings.notify_url_list
    notifiers.extend(
        AppriseNotifier(url, target) for url, target in zip(urls, targets(urls), strict=True)
    )
    return notifiers


def definition(settings: Settings) -> ServiceDefinition:
    metrics = RunMetrics()
    step = NotifyStep(settings, configured_notifiers(settings), metrics=metrics)
    return ServiceDefinition(
        name="notify",
        event_types=(*NOTIFICATION.follows, *HALT_EVENT_TYPES),
        handler=step.handle,
        collectors=metrics.collectors,
    )
