"""Deterministic keys (docs/trading-rules.md, Idempotency keys): the same inputs always give the
same id, so a retry, a redelivery or a restart finds the existing plan, order or run instead of
making a second one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Literal
from uuid import UUID, uuid5

from shared.trading import Side

ID_NAMESPACE = UUID("5d0c7d0e-4f8a-5a3b-9a57-6c1e6b0d2a41")
"""Fixed UUIDv5 namespace of this system's derived ids; changing it changes every plan id."""

CLIENT_ORDER_ID_PREFIX = "alc:"
MAX_CLIENT_ORDER_ID_LENGTH = 128

_SIDE_CODES: dict[str, str] = {Side.BUY: "b", Side.SELL: "s"}
_SIDES_BY_CODE: dict[str, Side] = {"b": Side.BUY, "s": Side.SELL}
_PHASES_BY_CODE: dict[str, Side] = {"buy": Side.BUY, "sell": Side.SELL}


def plan_id(workflow_id: str) -> UUID:
    """The one plan id of a workflow (execution ignores a second plan with the same id)."""
    return uuid5(ID_NAMESPACE, f"plan:{workflow_id}")


def client_order_id(workflow_id: str, symbol: str, side: Side, phase: Side, attempt: int) -> str:
    """`alc:{workflow_id}:{symbol}:{b|s}:{sell|buy}:{attempt}`, at most 128 characters."""
    if not workflow_id:
        raise ValueError("client_order_id needs a workflow_id")
    if side not in _SIDE_CODES or phase not in _SIDE_CODES:
        raise ValueError(f"client_order_id: side and phase must be BUY or SELL, got {side}/{phase}")
    if attempt < 1:
        raise ValueError(f"client_order_id: attempt starts at 1, got {attempt}")
    ticker = symbol.strip().upper()
    if not ticker or ":" in ticker:
        raise ValueError(f"client_order_id: invalid symbol {symbol!r}")
    value = (
        f"{CLIENT_ORDER_ID_PREFIX}{workflow_id}:{ticker}:{_SIDE_CODES[side]}:"
        f"{phase.lower()}:{attempt}"
    )
    if len(value) > MAX_CLIENT_ORDER_ID_LENGTH:
        raise ValueError(
            f"client_order_id {value!r} is {len(value)} characters; the broker allows "
            f"{MAX_CLIENT_ORDER_ID_LENGTH} — use a shorter workflow id"
        )
    return value


@dataclass(frozen=True, slots=True)
class ClientOrderKey:
    workflow_id: str
    symbol: str
    side: Side
    phase: Side
    attempt: int


def parse_client_order_id(value: str) -> ClientOrderKey | None:
    """The parts of one of this system's client order ids; None for a foreign order's id."""
    if not value.startswith(CLIENT_ORDER_ID_PREFIX):
        return None
    parts = value[len(CLIENT_ORDER_ID_PREFIX) :].rsplit(":", 4)
    if len(parts) != 5:
        return None
    workflow_id, symbol, side_code, phase_code, attempt_text = parts
    side = _SIDES_BY_CODE.get(side_code)
    phase = _PHASES_BY_CODE.get(phase_code)
    if not workflow_id or not symbol or side is None or phase is None:
        return None
    if not attempt_text.isdigit() or int(attempt_text) < 1:
        return None
    return ClientOrderKey(workflow_id, symbol, side, phase, int(attempt_text))


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
