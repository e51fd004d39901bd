"""The Alpaca adapter of the `Broker` port, over alpaca-py's sync clients.

Each SDK call runs in a worker thread (`asyncio.to_thread`). The SDK's own retry loop (3 silent
attempts on 429/504, 3 s apart) is switched off and its HTTP session gets a timeout (the SDK sets
none), so that retries happen here, where an order retry can first look the order up by its client
order id (docs/trading-rules.md, Retries): a retry can never double an order.

Every HTTP request waits for the process's request limiter first
(docs/trading-rules.md, Request budget), so the processes sharing a key stay inside Alpaca's 200
requests a minute together.

Keys are held as `SecretStr` until the SDK client is built, and every message this module writes
is passed through `Redactor`, so a key can appear neither in a log nor in an error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import structlog
from aiolimiter import AsyncLimiter
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment
from alpaca.data.enums import DataFeed as AlpacaDataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest, StockLatestTradeRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide as AlpacaOrderSide
from alpaca.trading.enums import QueryOrderStatus, TimeInForce
from alpaca.trading.models import Asset as AlpacaAsset
from alpaca.trading.models import ClosePositionResponse as AlpacaClosePositionResponse
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.models import Position as AlpacaPosition
from alpaca.trading.models import TradeAccount as AlpacaAccount
from alpaca.trading.requests import (
    GetCalendarRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
)
from pydantic import SecretStr

from shared.broker.alpaca_errors import ALREADY_TERMINAL_CODE, Redactor, broker_error_from_api
from shared.broker.alpaca_mapping import (
    NEW_YORK,
    aware,
    decimal_or_none,
    enum_value,
    order_from_alpaca,
    position_from_alpaca,
    session_from_alpaca,
)
from shared.broker.errors import (
    BrokerAuthError,
    BrokerError,
    DuplicateClientOrderIdError,
    NotFoundError,
    OrderAlreadyTerminalError,
    RateLimitedError,
    TransientBrokerError,
)
from shared.broker.models import (
    Account,
    Asset,
    CancelOutcome,
    CancelResult,
    DailyBar,
    MarketClock,
    Order,
    OrderRequest,
    OrderType,
    Position,
    PositionClose,
    Trade,
    TradingSession,
)
from shared.broker.request_budget import BudgetShare, RequestBudget
from shared.settings import DataFeed, Settings, TradingMode
from shared.trading import Quote, QuoteSource, Side

T = TypeVar("T")

DEFAULT_ACCOUNT_ID = "default"
DEFAULT_TIMEOUT_S = 10.0
BARS_EMPTY_RANGE_LIMIT_DAYS = 5
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

log = structlog.get_logger(__name__)


class _TimeoutSession(requests.Session):
    """A requests session whose every call has a timeout: alpaca-py passes none, and a hung
    connection would otherwise hold a worker thread (and an order's fate) forever."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout_s = timeout_s

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout_s)
        return super().request(*args, **kwargs)


def _without_sdk_retries(
    client: TradingClient | StockHistoricalDataClient, timeout_s: float
) -> None:
    # RESTClient treats retry_attempts=0 as "use the default 3", so its field is set directly.
    client._retry = 0
    client._session = _TimeoutSession(timeout_s)


def _is_loopback(url: str) -> bool:
    return urlsplit(url).hostname in LOOPBACK_HOSTS


def _is_order_id(order_id: str) -> bool:
    """Alpaca order ids are UUIDs; the SDK raises ValueError before asking about anything else."""
    try:
        uuid.UUID(order_id)
    except ValueError:
        return False
    return True


class AlpacaBroker:
    """`Broker` over Alpaca's Trading and Market Data APIs for the one account, `default`.

    Paper or live comes from `trading_mode` (`ALCHEMISER_TRADING_MODE`), passed to the SDK as its
    `paper` flag — never from a URL. `base_url_override` exists ONLY so that tests can point both
    clients at the loopback server in `tests/fakes/alpaca/`; production code never sets
    it, and anything but a loopback URL is refused. `sleep` and `jitter` are injected so tests
    do not wait for backoffs. `limiter` is the process's share of the key's request budget
    (`from_settings` makes it from the settings; None: no limit, for tests of the adapter).
    """

    def __init__(
        self,
        *,
        key_id: SecretStr,
        secret_key: SecretStr,
        trading_mode: TradingMode = TradingMode.PAPER,
        data_feed: DataFeed = DataFeed.IEX,
        retries: int = 3,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        account_id: str = DEFAULT_ACCOUNT_ID,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        base_url_override: str | None = None,
        limiter: AsyncLimiter | None = None,
    ) -> None:
        if account_id != DEFAULT_ACCOUNT_ID:
            raise BrokerError(
                f"account {account_id!r}: the Alpaca broker serves one account, "
                f"{DEFAULT_ACCOUNT_ID!r}; use the simulated broker for several accounts"
            )
        if base_url_override is not None and not _is_loopback(base_url_override):
            raise BrokerError(
                f"base_url_override={base_url_override!r}: only a loopback test server may "
                "replace Alpaca's URLs; choose paper or live with ALCHEMISER_TRADING_MODE"
            )
        if not key_id.get_secret_value() or not secret_key.get_secret_value():
            raise BrokerAuthError(
                "ALCHEMISER_ALPACA_KEY_ID and ALCHEMISER_ALPACA_SECRET_KEY must both be set "
                "for ALCHEMISER_BROKER=alpaca"
            )
        self._account_id = account_id
        self._trading_mode = trading_mode
        self._feed = AlpacaDataFeed(data_feed.value)
        self._retries = retries
        self._timeout_s = timeout_s
        self._sleep = sleep
        self._jitter = jitter
        self._redact = Redactor(key_id, secret_key)
        self._limiter = limiter
        self._trading = TradingClient(
            api_key=key_id.get_secret_value(),
            secret_key=secret_key.get_secret_value(),
            paper=trading_mode is TradingMode.PAPER,
            url_override=base_url_override,
        )
        self._data = StockHistoricalDataClient(
            api_key=key_id.get_secret_value(),
            secret_key=secret_key.get_secret_value(),
            url_override=base_url_override,
        )
        _without_sdk_retries(self._trading, timeout_s)
        _without_sdk_retries(self._data, timeout_s)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        share: BudgetShare,
        limiter: AsyncLimiter | None = None,
        **overrides: Any,
    ) -> AlpacaBroker:
        """The adapter for the configured key, limited to `share` of
        ALCHEMISER_ALPACA_REQUESTS_PER_MIN (by `limiter` when the process already holds one)."""
        if settings.alpaca_key_id is None or settings.alpaca_secret_key is None:
            raise BrokerAuthError(
                "ALCHEMISER_ALPACA_KEY_ID and ALCHEMISER_ALPACA_SECRET_KEY must both be set "
                "for ALCHEMISER_BROKER=alpaca"
            )
        return cls(
            key_id=settings.alpaca_key_id,
            secret_key=settings.alpaca_secret_key,
            trading_mode=settings.trading_mode,
            data_feed=settings.alpaca_data_feed,
            retries=settings.broker_retries,
            limiter=limiter or RequestBudget.from_settings(settings, share).limiter(),
            **overrides,
        )

    def __repr__(self) -> str:
        return f"AlpacaBroker(account_id={self._account_id!r}, mode={self._trading_mode.value})"

    @property
    def account_id(self) -> str:
        return self._account_id

    # ------------------------------------------------------------------ account and positions

    async def get_account(self) -> Account:
        raw = await self._call("read the account", self._trading.get_account)
        assert isinstance(raw, AlpacaAccount)
        return Account(
            account_id=self._account_id,
            cash=decimal_or_none(raw.cash) or Decimal(0),
            buying_power=decimal_or_none(raw.buying_power) or Decimal(0),
            equity=decimal_or_none(raw.equity) or Decimal(0),
            portfolio_value=decimal_or_none(raw.portfolio_value or raw.equity) or Decimal(0),
            status=enum_value(raw.status),
            daytrading_buying_power=decimal_or_none(raw.daytrading_buying_power),
            pattern_day_trader=bool(raw.pattern_day_trader),
            daytrade_count=raw.daytrade_count or 0,
        )

    async def get_positions(self) -> list[Position]:
        raw = await self._call("list positions", self._trading.get_all_positions)
        assert isinstance(raw, list)
        return [position_from_alpaca(p) for p in raw]

    async def get_position(self, symbol: str) -> Position | None:
        try:
            raw = await self._call(
                f"read position {symbol}", lambda: self._trading.get_open_position(symbol)
            )
        except NotFoundError:
            return None
        assert isinstance(raw, AlpacaPosition)
        return position_from_alpaca(raw)

    async def get_asset(self, symbol: str) -> Asset | None:
        try:
            raw = await self._call(f"read asset {symbol}", lambda: self._trading.get_asset(symbol))
        except NotFoundError:
            return None
        assert isinstance(raw, AlpacaAsset)
        return Asset(
            symbol=raw.symbol,
            tradable=raw.tradable,
            fractionable=raw.fractionable,
            name=raw.name,
            exchange=enum_value(raw.exchange),
        )

    # ------------------------------------------------------------------ orders

    async def get_open_orders(self) -> list[Order]:
        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500, nested=False)
        raw = await self._call("list open orders", lambda: self._trading.get_orders(request))
        assert isinstance(raw, list)
        return [order_from_alpaca(o) for o in raw]

    async def get_order(self, order_id: str) -> Order | None:
        if not _is_order_id(order_id):
            return None
        try:
            raw = await self._call(
                f"read order {order_id}", lambda: self._trading.get_order_by_id(order_id)
            )
        except NotFoundError:
            return None
        assert isinstance(raw, AlpacaOrder)
        return order_from_alpaca(raw)

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        try:
            raw = await self._call(
                f"look up order {client_order_id}",
                lambda: self._trading.get_order_by_client_id(client_order_id),
            )
        except NotFoundError:
            return None
        assert isinstance(raw, AlpacaOrder)
        return order_from_alpaca(raw)

    async def submit_order(self, request: OrderRequest) -> Order:
        side = AlpacaOrderSide(request.side.lower())
        alpaca_request: MarketOrderRequest | LimitOrderRequest
        if request.order_type is OrderType.LIMIT:
            alpaca_request = LimitOrderRequest(
                symbol=request.symbol,
                qty=float(request.qty),
                side=side,
                time_in_force=TimeInForce.DAY,
                limit_price=float(request.limit_price or 0),
                client_order_id=request.client_order_id,
            )
        else:
            alpaca_request = MarketOrderRequest(
                symbol=request.symbol,
                qty=float(request.qty),
                side=side,
                time_in_force=TimeInForce.DAY,
                client_order_id=request.client_order_id,
            )
        operation = (
            f"submit order {request.client_order_id} "
            f"({request.side.lower()} {request.qty} {request.symbol} {request.order_type.value})"
        )
        order = await self._place_once(
            operation,
            request.client_order_id,
            lambda: self._trading.submit_order(alpaca_request),
            expect=(request.symbol, request.side),
        )
        log.info(
            "broker_order_placed",
            client_order_id=order.client_order_id,
            order_id=order.order_id,
            symbol=order.symbol,
            side=order.side.lower(),
            qty=str(order.qty),
            status=order.broker_status,
        )
        return order

    async def cancel_order(self, order_id: str) -> CancelResult:
        operation = f"cancel order {order_id}"
        if not _is_order_id(order_id):
            raise NotFoundError(f"{operation}: no Alpaca order has this id (ids are UUIDs)")
        try:
            await self._call(operation, lambda: self._trading.cancel_order_by_id(order_id))
        except OrderAlreadyTerminalError as error:
            return CancelResult(
                order_id=order_id,
                outcome=CancelOutcome.ALREADY_TERMINAL,
                terminal_state=error.state,
            )
        except BrokerError as error:
            # 42210000 is Alpaca's code for any unprocessable request; the order itself says
            # whether it had ended.
            if error.code != ALREADY_TERMINAL_CODE:
                raise
            order = await self.get_order(order_id)
            if order is None or not order.is_terminal:
                raise
            return CancelResult(
                order_id=order_id,
                outcome=CancelOutcome.ALREADY_TERMINAL,
                terminal_state=order.broker_status,
            )
        return CancelResult(order_id=order_id, outcome=CancelOutcome.REQUESTED)

    async def get_orders(self, symbol: str, after: dt.datetime) -> list[Order]:
        request = GetOrdersRequest(
            status=QueryOrderStatus.ALL,
            symbols=[symbol],
            after=after,
            direction=Sort.DESC,
            limit=500,
            nested=False,
        )
        raw = await self._call(
            f"list the orders of {symbol} since {after.isoformat()}",
            lambda: self._trading.get_orders(request),
        )
        assert isinstance(raw, list)
        return [order_from_alpaca(o) for o in raw]

    async def close_position(self, symbol: str) -> Order | None:
        """DELETE /v2/positions/{symbol} without qty or percentage: Alpaca sells exactly what is
        held. Only a 429 is retried (nothing was placed); after a 5xx or a timeout the order may
        exist, so the error reaches the caller, which reconciles with `get_orders` first."""
        try:
            raw = await self._call(
                f"close the position in {symbol}",
                lambda: self._trading.close_position(symbol),
                retry_if=lambda error: isinstance(error, RateLimitedError),
            )
        except NotFoundError:
            return None
        assert isinstance(raw, AlpacaOrder)
        order = order_from_alpaca(raw)
        log.info(
            "broker_position_closed",
            symbol=symbol,
            order_id=order.order_id,
            qty=str(order.qty),
            status=order.broker_status,
        )
        return order

    async def close_all_positions(self) -> list[PositionClose]:
        raw = await self._call(
            "close all positions", lambda: self._trading.close_all_positions(cancel_orders=True)
        )
        assert isinstance(raw, list)
        return [self._position_close(item) for item in raw]

    def _position_close(self, item: AlpacaClosePositionResponse) -> PositionClose:
        if isinstance(item.body, AlpacaOrder):
            return PositionClose(symbol=item.symbol or "", order=order_from_alpaca(item.body))
        return PositionClose(
            symbol=item.symbol or item.body.symbol,
            order=None,
            error=self._redact(item.body.message),
        )

    # ------------------------------------------------------------------ market data and time

    async def get_latest_quote(self, symbol: str) -> Quote | None:
        request = StockLatestQuoteRequest(symbol_or_symbols=[symbol], feed=self._feed)
        raw = await self._call(
            f"read the latest quote of {symbol}",
            lambda: self._data.get_stock_latest_quote(request),
        )
        assert isinstance(raw, dict)
        quote = raw.get(symbol)
        if quote is None:
            return None
        return Quote(
            symbol=symbol,
            bid=Decimal(str(quote.bid_price)),
            ask=Decimal(str(quote.ask_price)),
            bid_size=Decimal(str(quote.bid_size)),
            ask_size=Decimal(str(quote.ask_size)),
            as_of=aware(quote.timestamp),
            source=QuoteSource.REST,
        )

    async def get_latest_trade(self, symbol: str) -> Trade | None:
        request = StockLatestTradeRequest(symbol_or_symbols=[symbol], feed=self._feed)
        raw = await self._call(
            f"read the latest trade of {symbol}",
            lambda: self._data.get_stock_latest_trade(request),
        )
        assert isinstance(raw, dict)
        trade = raw.get(symbol)
        if trade is None:
            return None
        return Trade(
            symbol=symbol,
            price=Decimal(str(trade.price)),
            size=Decimal(str(trade.size)),
            timestamp=aware(trade.timestamp),
        )

    async def get_clock(self) -> MarketClock:
        raw = await self._call("read the market clock", self._trading.get_clock)
        return MarketClock(
            now=aware(raw.timestamp),  # type: ignore[union-attr]
            is_open=raw.is_open,  # type: ignore[union-attr]
            next_open=aware(raw.next_open),  # type: ignore[union-attr]
            next_close=aware(raw.next_close),  # type: ignore[union-attr]
        )

    async def get_calendar(self, start: dt.date, end: dt.date) -> list[TradingSession]:
        request = GetCalendarRequest(start=start, end=end)
        raw = await self._call(
            f"read the calendar {start}..{end}", lambda: self._trading.get_calendar(request)
        )
        assert isinstance(raw, list)
        return [session_from_alpaca(day) for day in raw]

    async def get_daily_bars(
        self, symbols: Sequence[str], start: dt.date, end: dt.date
    ) -> list[DailyBar]:
        """Adjusted (splits and dividends) daily bars of the configured feed, one row per symbol
        and session, ordered by symbol then date. An empty answer for a range over 5 days is
        treated as a transient failure and retried (docs/trading-rules.md, Alpaca calls)."""
        operation = f"fetch daily bars of {', '.join(symbols)} {start}..{end}"
        request = StockBarsRequest(
            symbol_or_symbols=list(symbols),
            timeframe=TimeFrame(1, TimeFrameUnit.Day),
            start=dt.datetime.combine(start, dt.time(), tzinfo=NEW_YORK),
            end=dt.datetime.combine(end, dt.time(23, 59), tzinfo=NEW_YORK),
            adjustment=Adjustment.ALL,
            feed=self._feed,
        )

        def fetch() -> list[DailyBar]:
            bar_set = self._data.get_stock_bars(request)
            rows = [
                DailyBar(
                    date=aware(bar.timestamp).astimezone(NEW_YORK).date(),
                    symbol=symbol,
                    open=Decimal(str(bar.open)),
                    high=Decimal(str(bar.high)),
                    low=Decimal(str(bar.low)),
                    close=Decimal(str(bar.close)),
                    volume=Decimal(str(bar.volume)),
                )
                for symbol, bars in bar_set.data.items()  # type: ignore[union-attr]
                for bar in bars
            ]
            if not rows and (end - start).days > BARS_EMPTY_RANGE_LIMIT_DAYS:
                raise TransientBrokerError(
                    f"{operation}: Alpaca returned no bars for a {(end - start).days}-day range; "
                    "check the symbols and ALCHEMISER_ALPACA_DATA_FEED",
                    code="no_bars",
                )
            return sorted(rows, key=lambda row: (row.symbol, row.date))

        return await self._call(operation, fetch)

    # ------------------------------------------------------------------ calls, retries, errors

    async def _call(
        self,
        operation: str,
        call: Callable[[], T],
        retry_if: Callable[[BrokerError], bool] = lambda error: error.retryable,
    ) -> T:
        """Run one SDK call off the event loop, retrying (by default every retryable error:
        429/5xx/timeouts) with backoff.

        Only for calls that are safe to repeat; order placement goes through `_place_once`."""
        attempt = 0
        while True:
            try:
                return await self._request(operation, call)
            except BrokerError as error:
                if not retry_if(error) or attempt >= self._retries:
                    raise
                attempt += 1
                await self._pause(operation, attempt, error)

    async def _place_once(
        self,
        operation: str,
        client_order_id: str,
        call: Callable[[], object],
        *,
        expect: tuple[str, Side],
    ) -> Order:
        """Place an order at most once under `client_order_id`.

        Before every retry the order is looked up by its client order id and resubmitted only if
        the broker lacks it (a timed-out or 5xx'd request may have been accepted); when the
        retries are used up it is looked up once more, so a failure raised from here means the
        broker did not show the order. A duplicate-id rejection is answered with the order
        already there."""
        attempt = 0
        while True:
            if attempt > 0:
                existing = await self.get_order_by_client_id(client_order_id)
                if existing is not None:
                    log.info(
                        "broker_order_found_before_retry",
                        client_order_id=client_order_id,
                        order_id=existing.order_id,
                        attempt=attempt,
                    )
                    return self._matching(existing, operation, expect)
            try:
                raw = await self._request(operation, call)
            except DuplicateClientOrderIdError:
                existing = await self.get_order_by_client_id(client_order_id)
                if existing is None:
                    raise
                return self._matching(existing, operation, expect)
            except BrokerError as error:
                if not error.retryable:
                    raise
                if attempt >= self._retries:
                    existing = await self._last_look(client_order_id)
                    if existing is None:
                        raise
                    return self._matching(existing, operation, expect)
                attempt += 1
                await self._pause(operation, attempt, error)
                continue
            assert isinstance(raw, AlpacaOrder)
            return order_from_alpaca(raw)

    async def _last_look(self, client_order_id: str) -> Order | None:
        """One lookup without retries after the last failed placement; None if it fails too."""
        try:
            raw = await self._request(
                f"look up order {client_order_id}",
                lambda: self._trading.get_order_by_client_id(client_order_id),
            )
        except BrokerError:
            return None
        assert isinstance(raw, AlpacaOrder)
        return order_from_alpaca(raw)

    @staticmethod
    def _matching(order: Order, operation: str, expect: tuple[str, Side]) -> Order:
        if (order.symbol, order.side) != expect:
            raise DuplicateClientOrderIdError(
                f"{operation}: client order id {order.client_order_id} already names a different "
                f"order ({order.side.lower()} {order.symbol}, id {order.order_id}); "
                "client order ids must be unique per order",
                code="40010001",
                http_status=422,
            )
        return order

    async def _pause(self, operation: str, attempt: int, error: BrokerError) -> None:
        delay_s = 2 ** (attempt - 1) * (1 + 0.2 * self._jitter())
        if isinstance(error, RateLimitedError) and error.retry_after_s is not None:
            delay_s = max(delay_s, error.retry_after_s)
        log.warning(
            "broker_call_retry",
            operation=operation,
            attempt=attempt,
            retries=self._retries,
            delay_s=round(delay_s, 3),
            error=type(error).__name__,
            http_status=error.http_status,
            code=error.code,
        )
        await self._sleep(delay_s)

    async def _request(self, operation: str, call: Callable[[], T]) -> T:
        """One SDK call (one HTTP request; a bar fetch may page) off the event loop, once the
        limiter allows it."""
        if self._limiter is not None:
            await self._limiter.acquire()
        return await asyncio.to_thread(self._translated, operation, call)

    def _translated(self, operation: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except APIError as error:
            raise broker_error_from_api(
                operation, error, redact=self._redact, trading_mode=self._trading_mode
            ) from None
        except requests.Timeout:
            raise TransientBrokerError(
                f"{operation}: Alpaca did not answer within {self._timeout_s} s; "
                "the call is retried (an order is looked up by its client order id first)",
                code="timeout",
            ) from None
        except requests.ConnectionError as error:
            raise TransientBrokerError(
                self._redact(
                    f"{operation}: could not reach Alpaca ({type(error).__name__}); "
                    "check the network and that the service is up"
                ),
                code="connection",
            ) from None
