"""Alpaca's error answers into our `BrokerError` classes, with every key redacted.

Alpaca reuses codes across meanings (42210000 is any unprocessable request, 40310000 both
"insufficient buying power" and "insufficient qty available"), so the status and the message
decide the class; the code travels on the error for `OrderRejected`. A refusal under one of the
order-acceptance rules is read by `order_rules.rule_of`, so it becomes exactly the error the
simulated broker raises for the same order."""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal
from typing import Any

from alpaca.common.exceptions import APIError
from pydantic import SecretStr

from shared.broker import order_rules
from shared.broker.alpaca_mapping import decimal_or_none
from shared.broker.errors import (
    BrokerAuthError,
    BrokerError,
    DuplicateClientOrderIdError,
    InsufficientBuyingPowerError,
    InsufficientQtyAvailableError,
    InvalidOrderError,
    NotFoundError,
    OrderAlreadyTerminalError,
    RateLimitedError,
    TransientBrokerError,
)
from shared.settings import TradingMode

ALREADY_TERMINAL_CODE = "42210000"
ALREADY_IN_STATE = re.compile(r'already in "?(?P<state>[a-z_]+)"? state', re.IGNORECASE)
# Alpaca has written both "client_order_id must be unique" and "client order id must be unique".
DUPLICATE_CLIENT_ORDER_ID = re.compile(
    r"client[\s_-]?order[\s_-]?id (must be unique|already exists)|duplicate client[\s_-]?order"
)
REQUESTED_AVAILABLE = re.compile(
    r"requested:\s*(?P<requested>[0-9.]+).*?available:\s*(?P<available>[0-9.]+)", re.IGNORECASE
)


class Redactor:
    """Replaces every key in a text with `***` before it can reach a message or a log."""

    def __init__(self, *secrets: SecretStr) -> None:
        self._secrets = [s.get_secret_value() for s in secrets if s.get_secret_value()]

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def error_body(error: APIError) -> tuple[str | None, str | None, dict[str, Any]]:
    """The broker's (code, message, fields); (None, None, {}) for a body that is not JSON."""
    try:
        body = json.loads(str(error))
    except ValueError:
        return None, None, {}
    if not isinstance(body, dict):
        return None, None, {}
    code = body.get("code")
    message = body.get("message")
    return (
        None if code is None else str(code),
        None if message is None else str(message),
        body,
    )


def retry_after_s(error: APIError) -> float | None:
    """Seconds to wait before the next call: `Retry-After`, else Alpaca's `X-RateLimit-Reset`
    (the epoch second at which the rate window resets); None when the answer says neither."""
    response = error.response
    if response is None:
        return None
    retry_after = response.headers.get("Retry-After")
    reset_at = response.headers.get("X-RateLimit-Reset")
    try:
        if retry_after is not None:
            return max(float(retry_after), 0.0)
        if reset_at is not None:
            return max(float(reset_at) - time.time(), 0.0)
    except ValueError:
        return None
    return None


def broker_error_from_api(
    operation: str, error: APIError, *, redact: Redactor, trading_mode: TradingMode
) -> BrokerError:
    """Classify an Alpaca error answer by status, then by its code and words
    (docs/trading-rules.md, Broker errors)."""
    status = error.status_code
    code, message, body = error_body(error)
    if message is None:
        shown = "an HTML page" if "<" in str(error)[:200] else repr(str(error)[:200])
    else:
        shown = message
    said = redact(f"{operation}: Alpaca answered HTTP {status}: {shown}")
    if code is not None:
        said += f" (code {code})"
    lowered = (message or "").lower()
    if status == 429:
        pause_s = retry_after_s(error)
        wait = "a backoff" if pause_s is None else f"{pause_s:.3g} s"
        return RateLimitedError(
            f"{said}; retried after {wait}",
            retry_after_s=pause_s,
            code=code,
        )
    if status is not None and status >= 500:
        return TransientBrokerError(f"{said}; retried", code=code, http_status=status)
    if status == 401:
        return BrokerAuthError(
            f"{said}; check that ALCHEMISER_ALPACA_KEY_ID and ALCHEMISER_ALPACA_SECRET_KEY are "
            f"{trading_mode.value} keys (ALCHEMISER_TRADING_MODE)",
            code=code,
            http_status=status,
        )
    if status == 404:
        return NotFoundError(said, code=code, http_status=status)
    rule = order_rules.rule_of(status, message)
    if rule is not None:
        return order_rules.rule_error(rule, said, code=code, http_status=status)
    if "insufficient qty available" in lowered:
        parsed = REQUESTED_AVAILABLE.search(message or "")
        available = body.get("available")
        return InsufficientQtyAvailableError(
            f"{said}; sell at most the available quantity",
            requested_qty=None if parsed is None else Decimal(parsed["requested"]),
            available_qty=(
                Decimal(parsed["available"])
                if parsed is not None
                else decimal_or_none(available)
                if isinstance(available, str | int | float)
                else None
            ),
            code=code,
            http_status=status,
        )
    already = ALREADY_IN_STATE.search(message or "")
    if already is not None:
        return OrderAlreadyTerminalError(
            said, state=already["state"].lower(), code=code, http_status=status
        )
    if DUPLICATE_CLIENT_ORDER_ID.search(lowered):
        return DuplicateClientOrderIdError(said, code=code, http_status=status)
    if status == 403 and "buying power" in lowered:
        return InsufficientBuyingPowerError(
            f"{said}; the order is not retried: reduce it or free cash first",
            code=code,
            http_status=status,
        )
    if status in (400, 422):
        return InvalidOrderError(
            f"{said}; the order is not retried: fix its quantity, price or symbol",
            code=code,
            http_status=status,
        )
    return BrokerError(said, code=code, http_status=status)
