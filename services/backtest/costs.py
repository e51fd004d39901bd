"""What a simulated fill costs beyond the close: slippage and Composer's published fee model.

A backtest fills at the session's close moved against the trade by the slippage (`--slippage-bps`),
not rounded; with `--fees composer` each SELL fill pays the SEC fee and the FINRA trading
activity fee, each rounded up to the cent, and BUY fills pay nothing, as Composer charges them.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import Literal

from shared.trading import Side

FeeModel = Literal["composer", "none"]
FEE_MODELS: tuple[FeeModel, ...] = ("composer", "none")

BPS = Decimal(10_000)
CENT = Decimal("0.01")
SEC_FEE_PER_DOLLAR_SOLD = Decimal("27.80") / Decimal(1_000_000)
TAF_PER_SHARE_SOLD = Decimal("0.000166")
TAF_CAP_PER_FILL = Decimal("8.30")


def fill_price(side: Side, close: Decimal, slippage_bps: Decimal) -> Decimal:
    """close × (1 + B/10 000) for a BUY, × (1 − B/10 000) for a SELL."""
    move = slippage_bps / BPS
    return close * (1 + move) if side is Side.BUY else close * (1 - move)


def fill_fees(side: Side, quantity: Decimal, value: Decimal, model: FeeModel) -> Decimal:
    """The fees of one fill of `quantity` shares worth `value` at its fill price."""
    if model == "none" or side is Side.BUY:
        return Decimal(0)
    sec_fee = _cents_up(value * SEC_FEE_PER_DOLLAR_SOLD)
    trading_activity_fee = _cents_up(min(quantity * TAF_PER_SHARE_SOLD, TAF_CAP_PER_FILL))
    return sec_fee + trading_activity_fee


def _cents_up(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_CEILING)
