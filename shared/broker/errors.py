"""One hierarchy for everything a broker can refuse or fail at
(docs/trading-rules.md, Broker errors).

Callers decide on `retryable` and the class, never on message text: the adapter has already read
the broker's code and words. `code` is the broker's own error code as a string (Alpaca's
`40310000`, or `timeout` / `connection` when no answer came), so `OrderRejected` can carry it.
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
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        if retryable is not None:
            self.retryable = retryable


class BrokerAuthError(BrokerError):
    """The keys were refused (401): wrong keys, or paper keys used live."""


class NotFoundError(BrokerError):
    """The broker does not know the order, position or asset asked for (404)."""


class InsufficientBuyingPowerError(BrokerError):
    """403: the account cannot pay for the order. Terminal: a retry would be refused again."""


class InvalidOrderError(BrokerError):
    """422: the order itself is wrong (fractional qty on a non-fractionable asset, not
    tradable, bad price). Terminal."""


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
