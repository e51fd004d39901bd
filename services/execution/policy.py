"""The settings execution's rules read, as plain frozen data: the shell builds it once from
`Settings`, so the rules in `machine.py` and `chain.py` never read the environment and a test
states exactly the waits and limits it runs under."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from shared.broker.request_budget import BudgetShare, RequestBudget
from shared.settings import BrokerKind, Settings


@dataclass(frozen=True)
class ExecutionPolicy:
    poll_s: float
    fill_wait_s: float
    """How long a limit order works before a re-peg check."""
    final_wait_s: float
    """How long a market order works before what is left of it is cancelled."""
    cancel_confirm_s: float
    quote_wait_s: float
    max_repegs: int
    market_bp_checks: int
    settle_checks: int
    min_notional_usd: Decimal
    broker_retries: int
    treat_partial_as_failure: bool
    close_margin_s: float
    """No new order is sent this close to the session's close
    (docs/trading-rules.md, Close guard)."""
    poll_budget: RequestBudget | None
    """Execution's share of Alpaca's request budget, which slows polling as chains multiply
    (docs/trading-rules.md, Request budget); None for the simulated broker, which has none."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ExecutionPolicy:
        return cls(
            poll_s=settings.exec_poll_s,
            fill_wait_s=settings.exec_fill_wait_s,
            final_wait_s=settings.exec_final_wait_s,
            cancel_confirm_s=settings.exec_cancel_confirm_s,
            quote_wait_s=settings.exec_quote_wait_s,
            max_repegs=settings.exec_max_repegs,
            market_bp_checks=settings.exec_market_bp_checks,
            settle_checks=settings.exec_settle_checks,
            min_notional_usd=settings.exec_min_notional_usd,
            broker_retries=settings.broker_retries,
            treat_partial_as_failure=settings.treat_partial_as_failure,
            close_margin_s=settings.exec_close_margin_s,
            poll_budget=RequestBudget.from_settings(settings, BudgetShare.EXECUTION)
            if settings.broker is BrokerKind.ALPACA
            else None,
        )
