"""One hierarchy for everything a broker can refuse or fail at
(docs/trading-rules.md, Broker errors).

Callers decide on `retryable` and the class, never on message text: the adapter has already read
the broker's code and words. `code` is the broker's own error code as a string (Alpaca's
`40310000`, or `timeout` / `connection` when no answer came), so `OrderRejected` can carry it.
A refusal under one of Alpaca's order-acceptance rules (`shared.broker.order_rules`) also names
that rule in `rule`, whichever adapter refused.
"""

from __future__ import annotations

from decimal import Decimal


class BrokerError(Exception):
    """The broker refused or failed; the message names the call and what to do about it."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        retryable: bool | None = None,
        rule: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.rule = rule
        """The order-acceptance rule that refused the order (an `OrderRule` value), if any."""
        if retryable is not None:
            self.retryable = retryable


class BrokerAuthError(BrokerError):
    """The keys were refused (401): wrong keys, or paper keys used live."""


class NotFoundError(BrokerError):
    """The broker does not know the order, position or asset asked for (404)."""


class InsufficientBuyingPowerError(BrokerError):
    """403: the account cannot pay for the order. Terminal: a retry would be refused again."""


class DayTradingBuyingPowerError(InsufficientBuyingPowerError):
    """403: a BUY of an account flagged as a pattern day trader costs more than its day-trading
    buying power. Terminal until the next session recomputes that figure."""


class InvalidOrderError(BrokerError):
    """422 (403 for an order under the $1 minimum): the order itself is wrong — a fractional
    qty on a non-fractionable asset, too many decimals, a sub-penny limit price, not tradable.
    Terminal: the same order is refused again."""


class WashTradeError(BrokerError):
    """403: an order on a symbol while an order of the opposite side is open on it (Alpaca's
    wash-trade protection). Terminal for this order: cancel the opposite order first."""


class PatternDayTraderError(BrokerError):
    """403: the order could make the account a pattern day trader (a fourth day trade in five
    sessions on an account under $25,000), so Alpaca's pattern-day-trader protection refused it.
    Terminal today: no retry passes before the day trades age out or equity rises."""


class DuplicateClientOrderIdError(BrokerError):
    """The client order id was used before. The adapter resolves this by looking the order up;
    it reaches a caller only when the id belongs to a different order."""


class OrderAlreadyTerminalError(BrokerError):
    """The order had already ended (`order is already in "filled" state`)."""

    def __init__(
        self, message: str, *, state: str, code: str | None = None, http_status: int | None = None
    ) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.state = state


class InsufficientQtyAvailableError(BrokerError):
    """A sell for more than the position's available quantity; `available_qty` is the broker's
    figure (None when its message could not be read), for a resubmission with that quantity."""

    def __init__(
        self,
        message: str,
        *,
        requested_qty: Decimal | None,
        available_qty: Decimal | None,
        code: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.requested_qty = requested_qty
        self.available_qty = available_qty


class RateLimitedError(BrokerError):
    """429: too many calls. Retryable, after `retry_after_s` (Retry-After) when the broker says."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None,
        code: str | None = None,
        http_status: int | None = 429,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.retry_after_s = retry_after_s


class TransientBrokerError(BrokerError):
    """5xx, a timeout or a dropped connection. Retryable; after a timeout an order may or may not
    have been accepted, so an order retry must look it up by client order id first."""

    retryable = True
