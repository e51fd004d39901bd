"""What a handler or a periodic check may read from the store. It writes nothing itself: what it
decides goes back to the runtime (a handler's outcome, a periodic check's outcomes), which
commits it in one transaction with the inbox row or the timers it fired."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shared.eventstore.records import RecordedEvent
    from shared.eventstore.service_state import StoredState
    from shared.eventstore.workflow_queries import UnfinishedWorkflow


class EventStoreReader(Protocol):
    async def read_stream(self, stream_id: str) -> list[RecordedEvent]:
        """One stream's events in version order."""
        ...

    async def read_correlation(
        self, correlation_id: str, types: Collection[str] | None = None
    ) -> list[RecordedEvent]:
        """Every event of one workflow (only those of `types`, when given), in position (commit)
        order. A reader that needs a few small events names them, so the workflow's signal and
        plan, its largest events, are not decoded for nothing."""
        ...

    def replay(
        self, after_position: int = 0, page_size: int = 1000
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Every event after `after_position`, in position order, a page at a time: what a
        projection (the trade ledger, the P&L) folds."""
        ...

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Up to `limit` events with position > `after_position`, in position order: what a
        read model catches up from."""
        ...

    async def load_state(self, service: str, key: str) -> StoredState | None:
        """A service's state document and its version, or None when it was never saved."""
        ...

    async def unfinished_workflows(self, started_after: datetime) -> list[UnfinishedWorkflow]:
        """Workflows started after `started_after` with no terminal event yet."""
        ...
