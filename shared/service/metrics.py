"""Prometheus metrics of one service process, on a registry of its own (one per app, so several
apps in one test process or in the embedded mode never collide)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class ServiceMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.events_consumed = Counter(
            "alchemiser_events_consumed_total",
            "Events handled by this service, by type and outcome",
            ["service", "event_type", "outcome"],
            registry=self.registry,
        )
        self.events_published = Counter(
            "alchemiser_events_published_total",
            "Events published from the outbox, by type",
            ["event_type"],
            registry=self.registry,
        )
        self.handler_latency = Histogram(
            "alchemiser_handler_latency_seconds",
            "Time from delivery to commit of one event's handling",
            ["service", "event_type"],
            registry=self.registry,
        )
        self.outbox_lag = Gauge(
            "alchemiser_outbox_lag",
            "Outbox rows not yet published",
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "alchemiser_events_dead_lettered_total",
            "Messages sent to the dead-letter queue after their last failed attempt",
            ["service", "event_type"],
            registry=self.registry,
        )
