"""A loopback Alpaca for tests: Alpaca's REST answers, rules and order lifecycle on 127.0.0.1
(`server`), over one account's state (`world`: `account`, `market`, `orders`), with per-key
request counting and budgets (`budget`) and injected faults (`faults`)."""

from tests.fakes.alpaca.budget import RateBudget
from tests.fakes.alpaca.faults import Fault, FaultKind
from tests.fakes.alpaca.orders import CancelEnd, CancelRule, FillMode, FillRule
from tests.fakes.alpaca.server import AlpacaLoopback, running_alpaca
from tests.fakes.alpaca.world import AlpacaWorld

__all__ = [
    "AlpacaLoopback",
    "AlpacaWorld",
    "CancelEnd",
    "CancelRule",
    "Fault",
    "FaultKind",
    "FillMode",
    "FillRule",
    "RateBudget",
    "running_alpaca",
]
