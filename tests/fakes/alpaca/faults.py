"""Faults a test injects into the loopback's answers, per method and path."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    HANG = "hang"
    LOSE_RESPONSE = "lose_response"
    ANSWER = "answer"


@dataclass
class Fault:
    """The next `times` calls of `method path` answer with this fault instead of normally.

    RATE_LIMIT (a burst of 429s) sends `Retry-After: retry_after_s` and/or Alpaca's
    `X-RateLimit-Reset` (now + `reset_in_s`, epoch seconds) when those are set. SERVER_ERROR
    answers 500 with `body` (an HTML page). HANG waits `hang_s` and answers 504 without doing
    anything; LOSE_RESPONSE does the work (an order is accepted and filled) and then waits
    `hang_s` before answering, so a client with a shorter timeout never sees the answer. ANSWER
    replies `status` with `body` as JSON, for any other error Alpaca can give."""

    method: str
    path: str
    kind: FaultKind
    times: int = 1
    retry_after_s: int | None = 1
    reset_in_s: int | None = None
    hang_s: float = 1.0
    status: int = 500
    body: str = (
        "<html><head><title>500 Internal Server Error</title></head>"
        "<body><h1>Internal Server Error</h1></body></html>"
    )
