"""Every `ALCHEMISER_*` setting (docs/trading-rules.md, Settings), validated once at start.

A bad value must stop the process with one line naming the variable, so `load_settings` turns
pydantic's multi-line report into `SettingsError` with exactly that line.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.database_url import hosts_in_query

ENV_PREFIX = "ALCHEMISER_"
CLOSE_WINDOW_S = 900
"""The close window: the session's last 15 minutes, when the daily run starts."""


class SettingsError(Exception):
    """A setting is missing or invalid; the message is one line naming the variable."""


class BrokerKind(StrEnum):
    SIMULATED = "simulated"
    ALPACA = "alpaca"


class TradingMode(StrEnum):
    PAPER = "paper"
    LIVE = "live"


class DataFeed(StrEnum):
    IEX = "iex"
    SIP = "sip"


class FillModel(StrEnum):
    TOUCH = "touch"
    """Every order the market would take fills at once at the touch — the ask for a BUY, the bid
    for a SELL — so an unchanged market never shows a gain (the default)."""
    IMMEDIATE = "immediate"
    """Every order fills at once at its limit: optimistic, a passive limit earns the spread."""
    PARTIAL = "partial"
    REJECT_RATE = "reject-rate"
    CLOSE = "close"
    """Bid, ask and last are the session's close, unrounded; orders fill at it: the world a
    backtest assumes, so a live run can be compared with one."""


def normalise_database_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite:///` URLs and give them their async drivers; a
    PostgreSQL URL with several hosts gets them in the form the driver takes
    (`shared.database_url`). Raises ValueError for a malformed multi-host URL."""
    for plain, async_driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql+psycopg2://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            url = async_driver + url[len(plain) :]
            break
    if url.startswith("postgresql+asyncpg://"):
        return hosts_in_query(url)
    return url


SUPPORTED_DATABASE_URLS = ("postgresql+asyncpg://", "sqlite+aiosqlite:///")
"""The event store's drivers, after `normalise_database_url`."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    # Every service
    database_url: str | None = None
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    bus_namespace: str = Field(default="alchemiser", pattern=r"^[a-z][a-z0-9_.-]{0,62}$")
    bus_handlers_per_queue: int = Field(default=32, ge=1, le=256)
    """Messages a service handles at once from its queue (each waits on I/O, not the CPU)."""
    log_level: str = "INFO"
    data_dir: Path = Path("data")
    cache_dir: Path | None = None
    api_token: SecretStr | None = None

    # Broker
    broker: BrokerKind = BrokerKind.SIMULATED
    trading_mode: TradingMode = TradingMode.PAPER
    alpaca_key_id: SecretStr | None = None
    alpaca_secret_key: SecretStr | None = None
    alpaca_data_feed: DataFeed = DataFeed.IEX
    alpaca_requests_per_min: int = Field(default=180, ge=10, le=10000)
    """Alpaca requests a minute for the key, shared by strategy, portfolio and execution."""

    # Simulated world (docs/trading-rules.md, Simulated world)
    sim_now: str | None = None
    sim_starting_cash: Decimal = Field(default=Decimal("100000"), ge=0)
    sim_spread_bps: Decimal = Field(default=Decimal("10"), ge=0, lt=10000)
    sim_fill_model: FillModel = FillModel.TOUCH
    sim_latency_ms: int = Field(default=0, ge=0)
    sim_reject_rate: Decimal = Field(default=Decimal("0.1"), ge=0, le=1)
    sim_partial_fraction: Decimal = Field(default=Decimal("0.5"), gt=0, le=1)

    # Strategy and workflow
    strategy_config: Path | None = None
    account_strategy_configs: Path | None = None
    """JSON object of account id to allocation config; an account not in it trades
    `strategy_config` (docs/trading-rules.md, Shared signals)."""
    signal_window_s: int = Field(default=300, ge=1, le=3600)
    """In the session, workflows of one strategy set in one window of this many seconds share
    one live-price snapshot and one evaluation (docs/trading-rules.md, Shared signals)."""
    strategy_url: str = "http://127.0.0.1:8001"
    """Where `alchemiser trigger` finds the strategy service's workflow endpoint, and the
    dashboard its `/readyz`."""
    portfolio_url: str = "http://127.0.0.1:8002"
    execution_url: str = "http://127.0.0.1:8003"
    notify_service_url: str = "http://127.0.0.1:8004"
    """Where the dashboard polls the other services' `/readyz` (docs/web.md, Pages). Not
    NOTIFY_URLS, the notification channels."""
    workflow_deadline_s: float = Field(default=600, gt=0)

    # Portfolio (docs/trading-rules.md, Planning)
    cash_reserve: Decimal = Field(default=Decimal("0.01"), ge=0, lt=1)
    min_trade_fraction: Decimal = Field(default=Decimal("0.01"), ge=0, lt=1)
    """The planner's minimum trade θ as a fraction of the portfolio value."""
    liquidate_on_non_positive_cash: bool = False
    liquidation_wait_s: float = Field(default=30, gt=0)

    # Execution (docs/trading-rules.md, Execution; every wait is a durable timer)
    exec_poll_s: float = Field(default=2, gt=0)
    exec_fill_wait_s: float = Field(default=10, gt=0)
    exec_max_repegs: int = Field(default=1, ge=0)
    exec_cancel_confirm_s: float = Field(default=10, gt=0)
    exec_final_wait_s: float = Field(default=30, gt=0)
    exec_quote_wait_s: float = Field(default=5, gt=0)
    exec_settle_checks: int = Field(default=4, ge=0)
    exec_market_bp_checks: int = Field(default=5, ge=0)
    exec_min_notional_usd: Decimal = Field(default=Decimal("1.00"), ge=0)
    exec_close_margin_s: float = Field(default=120, ge=0)
    """No new order is sent in the session's last this many seconds (the close guard)."""
    last_start_s: float = Field(default=300, ge=0)
    """A run may start no later than this many seconds before the close guard begins."""
    broker_retries: int = Field(default=3, ge=0)
    timer_poll_s: float = Field(default=0.5, gt=0)
    treat_partial_as_failure: bool = True
    asset_cache_s: float = Field(default=300, ge=0)

    # Notify (docs/trading-rules.md, Notifications)
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    email_from: str = "alchemiser@localhost"
    email_to: str | None = None
    webhook_url: str | None = None
    notify_urls: SecretStr | None = None
    """apprise URLs separated by whitespace (docs/operations.md, Alerts); secret, since most of
    them carry their service's token."""
    email_neutral_mode: bool = False

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("sim_now")
    @classmethod
    def _iso_moment(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(
                    "not an ISO datetime; write it like 2024-11-29T12:45:00 (New York time) "
                    "or 2024-11-29T17:45:00+00:00"
                ) from None
        return value

    @field_validator("notify_urls")
    @classmethod
    def _apprise_understands(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        import apprise  # only where alerts are configured: every other process skips its plugins

        for position, url in enumerate(split_notify_urls(value.get_secret_value()), start=1):
            if apprise.Apprise.instantiate(url) is None:
                scheme = url.partition("://")[0] if "://" in url else "no scheme"
                raise ValueError(
                    f"URL {position} ({scheme}) is not one apprise understands; check it against "
                    "the URL forms in docs/operations.md, Alerts"
                )
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = normalise_database_url(value)
        if not url.startswith(SUPPORTED_DATABASE_URLS):
            raise ValueError(
                "not a database this release can use; write "
                "postgresql://USER:PASSWORD@HOST:5432/DB or sqlite:///PATH, or leave it unset "
                "for SQLite under ALCHEMISER_DATA_DIR"
            )
        return url

    @model_validator(mode="after")
    def _live_needs_alpaca(self) -> Settings:
        if self.trading_mode is TradingMode.LIVE and self.broker is not BrokerKind.ALPACA:
            raise ValueError(
                "ALCHEMISER_TRADING_MODE=live needs ALCHEMISER_BROKER=alpaca; "
                "the simulated broker is always paper"
            )
        return self

    @model_validator(mode="after")
    def _a_start_before_the_close_guard(self) -> Settings:
        cutoff_s = self.exec_close_margin_s + self.last_start_s
        if cutoff_s >= CLOSE_WINDOW_S:
            raise ValueError(
                f"ALCHEMISER_EXEC_CLOSE_MARGIN_S + ALCHEMISER_LAST_START_S is {cutoff_s:g} s, "
                f"which leaves no time to start a run in the close window (the session's last "
                f"{CLOSE_WINDOW_S} s); make their sum smaller than {CLOSE_WINDOW_S}"
            )
        return self

    @cached_property
    def resolved_database_url(self) -> str:
        """The store every command of one installation shares when no URL is given."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'alchemiser.db').resolve()}"

    @cached_property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.data_dir / "cache"

    @property
    def bus_exchange(self) -> str:
        """The topic exchange; queues are `{namespace}.{service}`, so deployments (or test runs)
        sharing one broker never see each other's messages."""
        return f"{self.bus_namespace}.events"

    def bus_queue(self, service: str) -> str:
        return f"{self.bus_namespace}.{service}"

    @property
    def is_live(self) -> bool:
        return self.trading_mode is TradingMode.LIVE

    @property
    def notify_url_list(self) -> list[str]:
        return split_notify_urls(self.notify_urls.get_secret_value()) if self.notify_urls else []

    @property
    def email_recipients(self) -> list[str]:
        raw = self.email_to or self.email_from
        return [address.strip() for address in raw.split(",") if address.strip()]


def split_notify_urls(raw: str) -> list[str]:
    """Whitespace separates the URLs, not commas: an apprise URL uses commas itself (several
    recipients, `?to=a,b`), and a URL never holds a blank (docs/decisions.md)."""
    return raw.split()


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part != "__root__"]
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if not location:
        return message
    variable = ENV_PREFIX + location[0].upper()
    given = first.get("input")
    secret = any(word in variable for word in ("TOKEN", "SECRET", "PASSWORD", "KEY", "NOTIFY_URLS"))
    if isinstance(given, str):
        given = _without_password(given)
    shown = "" if secret or isinstance(given, dict) or given is None else f" (got {given!r})"
    return f"{variable}: {message}{shown}"


def _without_password(value: str) -> str:
    """A URL's password hidden, so a refused URL can be shown."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", value)


OTHER_VARIABLES: dict[str, str] = {
    "ALCHEMISER_TEST_POSTGRES_URL": "the PostgreSQL server of the tests and benchmarks",
    "ALCHEMISER_TEST_RABBITMQ_URL": "the RabbitMQ server of the tests and benchmarks",
    "ALCHEMISER_CHAOS_SCALE": "ci or full: how many runs the fault tests make",
    "ALCHEMISER_CHAOS_RUNS": "replays only the first N runs of a fault test",
    "ALCHEMISER_CHAOS_SEED": "replays a fault test's reported seed",
    "ALCHEMISER_DOCS_SCREENSHOT": "1: the browser test refreshes docs/backtest-report.png",
}
"""The `ALCHEMISER_*` variables that are not settings: read by the tests, benchmarks and docs
tools (DEVELOPERS.md), and so allowed in the environment of any process they start."""


def known_variables() -> frozenset[str]:
    """Every `ALCHEMISER_*` name a process accepts: the settings and `OTHER_VARIABLES`."""
    return frozenset(ENV_PREFIX + name.upper() for name in Settings.model_fields) | frozenset(
        OTHER_VARIABLES
    )


def unknown_variable(names: Iterable[str]) -> str | None:
    """One line naming the first unknown `ALCHEMISER_*` name and the closest known one: a
    misspelled setting would otherwise be ignored and its default used in silence."""
    known = known_variables()
    for name in sorted(names):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        # Compared without the prefix every name shares, which would make any two look alike.
        suffixes = sorted(known_name.removeprefix(ENV_PREFIX) for known_name in known)
        closest = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX), suffixes, n=1)
        hint = (
            f"did you mean {ENV_PREFIX}{closest[0]}?"
            if closest
            else "no known name is close to it;"
        )
        return (
            f"{name}: not a setting; {hint} .env.example lists every setting, DEVELOPERS.md the "
            "test variables"
        )
    return None


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (and `.env`); raise `SettingsError` with one line on a bad value or
    an `ALCHEMISER_*` name that is not a setting."""
    env_file = Path(str(Settings.model_config.get("env_file")))
    in_file = dotenv_values(env_file) if env_file.is_file() else {}
    unknown = unknown_variable([*os.environ, *in_file])
    if unknown is not None:
        raise SettingsError(unknown)
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_one_line(error)) from None
