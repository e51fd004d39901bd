"""`alchemiser data import FILE.csv` and `alchemiser data sample`: fill the local bar store.

pyarrow, numpy and the exchange calendar are imported inside the commands so the CLI starts fast.
Errors a user can cause print one line (file, line, column, what to do) to stderr: exit 1 for
bad data, exit 2 for a bad setting or option.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer

from services.commands.failures import CommandFailedError, OptionError

if TYPE_CHECKING:
    from shared.marketdata.barstore import StoreManifest
    from shared.settings import Settings

NEW_YORK = ZoneInfo("America/New_York")

data_app = typer.Typer(
    name="data",
    help="The local bar store: fetch from Alpaca, import a CSV, or generate the synthetic sample.",
    no_args_is_help=True,
)

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: ALCHEMISER_DATA_DIR, ./data)."),
]


def _settings() -> Settings:
    """Settings; a bad one is turned into one line and exit 2 by the CLI's entry point."""
    from services.commands.settings import settings_or_exit

    return settings_or_exit()


def _describe(manifest: StoreManifest) -> str:
    kind = "SYNTHETIC sample, not real prices" if manifest.synthetic else manifest.source
    return (
        f"{len(manifest.symbols)} symbols, {manifest.sessions} sessions "
        f"{manifest.first_session} to {manifest.last_session} ({kind})"
    )


@data_app.command("import")
def import_bars(
    file: Annotated[
        Path,
        typer.Argument(help="Bars CSV (.csv or .csv.gz): date,symbol,open,high,low,close,volume"),
    ],
    data_dir: DataDirOption = None,
) -> None:
    """Merge a bars file into the bar store (its rows win on the same date and symbol)."""
    directory = data_dir or _settings().data_dir
    from shared.marketdata.bars import BarDataError
    from shared.marketdata.barstore import BarStore

    store = BarStore(directory)
    try:
        manifest = store.import_csv(file)
    except BarDataError as error:
        raise CommandFailedError(str(error)) from None
    print(f"imported {file} into {store.path}: {_describe(manifest)}")


@data_app.command("fetch")
def fetch(
    data_dir: DataDirOption = None,
    symbols: Annotated[
        str | None,
        typer.Option(help="Comma-separated symbols (default: every ticker of the strategy set)."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="First date of a full fetch, YYYY-MM-DD (default: 8 years back)."),
    ] = None,
) -> None:
    """Fetch adjusted daily bars from Alpaca (feed ALCHEMISER_ALPACA_DATA_FEED) into the bar
    store, incrementally, up to the last completed session."""
    import asyncio

    from shared import market_clock
    from shared.broker.alpaca import AlpacaBroker
    from shared.broker.errors import BrokerError
    from shared.broker.request_budget import BudgetShare
    from shared.marketdata.barstore import BarStore
    from shared.marketdata.fetch import fetch_into_store

    settings = _settings()
    try:
        first_day = date.fromisoformat(start) if start else None
    except ValueError:
        raise OptionError(f"--start {start!r}: expected a date YYYY-MM-DD") from None
    wanted = _fetch_symbols(settings, symbols)
    try:
        broker = AlpacaBroker.from_settings(settings, share=BudgetShare.STRATEGY)
    except BrokerError as error:
        raise OptionError(str(error)) from None
    store = BarStore(data_dir or settings.data_dir)
    end = market_clock.last_completed_session(datetime.now(UTC))

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        result = asyncio.run(
            fetch_into_store(
                store,
                broker,
                wanted,
                end,
                start=first_day,
                source_name=f"alpaca {settings.alpaca_data_feed.value}",
                progress=progress,
            )
        )
    except (BrokerError, ValueError) as error:
        raise CommandFailedError(str(error)) from None
    print(
        f"fetched {result.rows_fetched} bars of {result.symbols} symbols into {store.path}: "
        f"{_describe(store.manifest())}"
    )


def _fetch_symbols(settings: Settings, symbols: str | None) -> list[str]:
    if symbols:
        return sorted({part.strip().upper() for part in symbols.split(",") if part.strip()})
    from services.strategy.signals import SignalGenerationError, load_strategy_set
    from services.strategy.symphonies import configured_strategy_config

    try:
        strategy_set = load_strategy_set(
            configured_strategy_config(settings), settings.resolved_cache_dir
        )
    except SignalGenerationError as error:
        raise CommandFailedError(str(error)) from None
    return sorted(strategy_set.tickers | {"SPY"})


@data_app.command("sample")
def sample(
    data_dir: DataDirOption = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--end",
            help=(
                "End the sample at the last session closed by this moment: a date (its sessions "
                "included) or an ISO datetime (naive = New York time). "
                "Default: ALCHEMISER_SIM_NOW, else now."
            ),
        ),
    ] = None,
) -> None:
    """Create or extend the deterministic synthetic sample (labelled synthetic) in the bar store."""
    settings = _settings()
    end_before = _end_before(end, settings)
    from services.strategy.signal_step import bundled_symbols
    from shared.marketdata.bars import BarDataError
    from shared.marketdata.sample import ensure_sample

    directory = data_dir or settings.data_dir
    try:
        result = ensure_sample(directory, bundled_symbols(settings.resolved_cache_dir), end_before)
    except (BarDataError, ValueError) as error:
        raise CommandFailedError(str(error)) from None
    store_path = directory / "bars"
    if not result.manifest.synthetic:
        raise CommandFailedError(
            f"{store_path} holds imported bars ({result.manifest.source}); not replaced by the "
            "sample — give another --data-dir for a synthetic store"
        )
    print(f"{result.action} {store_path}: {_describe(result.manifest)}")


def _end_before(end: str | None, settings: Settings) -> datetime:
    if end is None:
        if settings.sim_now is None:
            return datetime.now(UTC)
        from shared.market_clock import parse_sim_now
        from shared.settings import SettingsError

        try:
            return parse_sim_now(settings.sim_now)
        except SettingsError as error:
            raise OptionError(str(error)) from None
    try:
        if len(end) == 10:
            return datetime.combine(date.fromisoformat(end), time(23, 59), tzinfo=NEW_YORK)
        moment = datetime.fromisoformat(end)
    except ValueError:
        raise OptionError(f"--end {end!r}: expected a date YYYY-MM-DD or an ISO datetime") from None
    return moment.replace(tzinfo=NEW_YORK) if moment.tzinfo is None else moment
