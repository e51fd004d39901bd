"""The simulated world (docs/trading-rules.md, Simulated world): a deterministic paper broker whose
quotes come from the bar store and whose accounts, positions, orders and fills live in the
database."""

from shared.broker.simulated.broker import SimulatedBroker, SimulatedWorldSettings
from shared.broker.simulated.scenario import (
    FixedQuote,
    QuoteShape,
    Scenario,
    SubmissionFault,
    SymbolFill,
)

__all__ = [
    "FixedQuote",
    "QuoteShape",
    "Scenario",
    "SimulatedBroker",
    "SimulatedWorldSettings",
    "SubmissionFault",
    "SymbolFill",
]
