"""The envelope every event carries
(docs/architecture.md, Event contract; docs/trading-rules.md, Envelope) and the frozen base model.

Events are flat documents: envelope fields and payload fields side by side, so that a consumer
reads `event.account_id` and `event.rebalance_plan` the same way. Each subclass pins its
`event_type` and current `schema_version` as literals; older versions are lifted by upcasters
when they are read back (`shared.events.codec`).
"""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from shared.events.types import NonEmptyStr, UtcDatetime

ENVELOPE_FIELDS: frozenset[str] = frozenset(
    {
        "event_id",
        "event_type",
        "schema_version",
        "correlation_id",
        "causation_id",
        "account_id",
        "occurred_at",
        "source",
    }
)
"""Fields stored as columns by the event store; everything else is the event's payload."""


class Frozen(BaseModel):
    """Immutable, strict about unknown fields: a typo in a producer fails loudly, not silently."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(Frozen):
    """Base of every event type; never instantiated itself."""

    EVENT_TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int]

    event_id: UUID = Field(default_factory=uuid4)
    event_type: str
    schema_version: int = Field(ge=1)
    correlation_id: NonEmptyStr
    causation_id: NonEmptyStr | None = None
    account_id: NonEmptyStr
    occurred_at: UtcDatetime
    source: NonEmptyStr
    metadata: dict[str, JsonValue] | None = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # Read the pinned literals back so the registry and upcasters can use them as plain values.
        super().__pydantic_init_subclass__(**kwargs)
        cls.EVENT_TYPE = cls.model_fields["event_type"].default
        cls.SCHEMA_VERSION = cls.model_fields["schema_version"].default

    def caused(self, **fields: Any) -> dict[str, Any]:
        """Envelope fields for an event caused by this one: same workflow and account, causation
        pointing here (docs/trading-rules.md, Causation). The caller adds `source`, `occurred_at`
        and the payload.
        """
        return {
            "correlation_id": self.correlation_id,
            "causation_id": str(self.event_id),
            "account_id": self.account_id,
            **fields,
        }

    def payload(self) -> dict[str, Any]:
        """The JSON-ready fields that are not envelope columns (metadata included)."""
        return self.model_dump(mode="json", exclude=set(ENVELOPE_FIELDS))
