"""Deterministic keys (docs/trading-rules.md, Idempotency keys): the same inputs always give the
same id, so a retry, a redelivery or a restart finds the existing plan, order or run instead of
making a second one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Literal
from uuid import UUID, uuid5

from shared.trading import Side

ID_NAMESPACE = UUID("5d0c7d0e-4f8a-5a3b-9a57-6c1e6b0d2a41")
"""Fixed UUIDv5 namespace of this system's derived ids; changing it changes every plan id."""

CLIENT_ORDER_ID_PREFIX = "alc:"
CLIENT_ORDER_ID_LENGTH = 36
"""What this system sends: the prefix and 32 hex digits, inside both the 48 characters of older
Alpaca documentation and the 128 Alpaca allows today."""
RECORDED_CLIENT_ORDER_ID_LENGTH = 128
"""What a recorded order event may carry: Alpaca's limit, which the earlier
`alc:{workflow_id}:{SYMBOL}:...` ids kept to, so events recorded with them still read."""

_HASH_HEX_DIGITS = CLIENT_ORDER_ID_LENGTH - len(CLIENT_ORDER_ID_PREFIX)


def plan_id(workflow_id: str) -> UUID:
    """The one plan id of a workflow (execution ignores a second plan with the same id)."""
    return uuid5(ID_NAMESPACE, f"plan:{workflow_id}")


def client_order_id(workflow_id: str, symbol: str, side: Side, attempt: int) -> str:
    """`alc:` and the first 128 bits (hex) of the SHA-256 of the canonical JSON
    `[workflow_id, SYMBOL, side, attempt]`: the same order always gets the same id, whatever
    the length of the workflow id, and two orders share one with odds of about 2^-64 even among
    billions. The workflow an id belongs to is read from its recorded `OrderRequested`, never
    from the id (docs/trading-rules.md, Client order ids)."""
    if not workflow_id:
        raise ValueError("client_order_id needs a workflow_id")
    if side not in (Side.BUY, Side.SELL):
        raise ValueError(f"client_order_id: side must be BUY or SELL, got {side}")
    if attempt < 1:
        raise ValueError(f"client_order_id: attempt starts at 1, got {attempt}")
    ticker = symbol.strip().upper()
    if not ticker:
        raise ValueError(f"client_order_id: invalid symbol {symbol!r}")
    canonical = json.dumps(
        [workflow_id, ticker, str(side), attempt], separators=(",", ":"), ensure_ascii=True
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{CLIENT_ORDER_ID_PREFIX}{digest[:_HASH_HEX_DIGITS]}"


def daily_run_key(mode: Literal["paper", "live"], account_id: str, trading_date: date) -> str:
    """`{paper|live}:{account_id}:{exchange trading date}`: one unforced run per day."""
    if mode not in ("paper", "live"):
        raise ValueError(f"daily_run_key: mode must be paper or live, got {mode!r}")
    if not account_id:
        raise ValueError("daily_run_key needs an account_id")
    return f"{mode}:{account_id}:{trading_date.isoformat()}"


def signal_fingerprint(weights: Mapping[str, Decimal | float | int | str]) -> str:
    """SHA-256 hex of the canonical JSON of the sorted `(SYMBOL, normalised weight)` pairs, so
    `0.5`, `0.50` and `Decimal("5E-1")` give the same fingerprint."""
    pairs: dict[str, str] = {}
    for symbol, weight in weights.items():
        ticker = symbol.strip().upper()
        if ticker in pairs:
            raise ValueError(f"signal_fingerprint: symbol {symbol!r} appears twice")
        pairs[ticker] = _normalised_decimal(ticker, weight)
    canonical = json.dumps(sorted(pairs.items()), separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _normalised_decimal(symbol: str, weight: Decimal | float | int | str) -> str:
    try:
        value = weight if isinstance(weight, Decimal) else Decimal(str(weight))
    except InvalidOperation as error:
        raise ValueError(f"signal_fingerprint: weight of {symbol} is not a number") from error
    if not value.is_finite():
        raise ValueError(f"signal_fingerprint: weight of {symbol} is {value}")
    if value.is_zero():
        return "0"
    return format(value.normalize(), "f")
