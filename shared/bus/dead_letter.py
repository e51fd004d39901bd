"""What a dead-lettered message carries, shared by every bus so operators read one format."""

from __future__ import annotations

from collections.abc import Mapping

ERROR_HEADER = "x-alchemiser-error"
QUEUE_HEADER = "x-alchemiser-queue"
ATTEMPTS_HEADER = "x-alchemiser-attempts"
ROUTING_KEY_HEADER = "x-alchemiser-routing-key"

MAX_REASON_CHARS = 1000


def failure_reason(error: BaseException) -> str:
    """`ExceptionType: message`, bounded so a huge exception text cannot bloat the DLQ."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def dead_letter_headers(
    headers: Mapping[str, str], *, reason: str, queue: str, attempts: int, routing_key: str
) -> dict[str, str]:
    """The original headers plus why, where and after how many attempts the message failed, and
    its original routing key (the DLQ is bound by queue name, so the key would be lost)."""
    return {
        **headers,
        ERROR_HEADER: reason,
        QUEUE_HEADER: queue,
        ATTEMPTS_HEADER: str(attempts),
        ROUTING_KEY_HEADER: routing_key,
    }
