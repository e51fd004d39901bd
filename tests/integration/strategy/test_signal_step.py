"""The strategy step: `WorkflowStarted` in, `SignalGenerated` out — on today's live prices in
the close window, on completed bars outside the session, never on stale bars."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from services.strategy.signal_step import SignalStep
from services.strategy.symphonies import bundled_config
from shared.broker.models import Trade
from shared.broker.port import Broker
from shared.events.signals import SignalGenerated
from shared.events.workflow import WorkflowFailed, WorkflowStarted
from shared.eventstore.migrations import upgrade
from shared.eventstore.store import SqlEventStore
from shared.marketdata.barstore import BarStore
from shared.marketdata.sample import ensure_sample
from shared.messaging.consumer import HandlerContext
from shared.settings import Settings
from shared.trading import Quote

NEW_YORK = dt.timezone(dt.timedelta(hours=-5))
FILES = ("test.clj", "6-TQQQ-FLT.clj")
SYMBOLS = ("SPY", "TQQQ", "UVXY", "SPXL", "XLK", "KMLM", "SQQQ", "TECL", "UPRO", "TLT")
# Tuesday 2024-11-26: a normal session (close 16:00 New York, 21:00 UTC).
SESSION = dt.date(2024, 11, 26)
IN_CLOSE_WINDOW = dt.datetime(2024, 11, 26, 20, 45, tzinfo=dt.UTC)
AFTER_CLOSE = dt.datetime(2024, 11, 26, 22, 0, tzinfo=dt.UTC)


class LastCloseBroker:
    """Live prices as a broker reports them: the latest trade at a fixed price per symbol."""

    def __init__(self, price: Decimal = Decimal("101.25")) -> None:
        self.price = price
        self.asked: list[str] = []

    @property
    def account_id(self) -> str:
        return "default"

    async def get_latest_trade(self, symbol: str) -> Trade | None:
        self.asked.append(symbol)
        return Trade(symbol=symbol, price=self.price, size=Decimal(1), timestamp=IN_CLOSE_WINDOW)

    async def get_latest_quote(self, symbol: str) -> Quote | None:
        return None


def config_with(tmp_path: Path, files: tuple[str, ...]) -> Path:
    folder = tmp_path / "strategies"
    folder.mkdir()
    for name in files:
        shutil.copy(bundled_config().parent / name, folder / name)
    path = folder / "allocation.json"
    weights = {name: 1 / len(files) for name in files}
    path.write_text(json.dumps({"files": list(files), "allocations": weights}))
    return path


@pytest.fixture(scope="module")
def sample_bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sample bars for the two files' tickers, ending with the session before SESSION."""
    data_dir = tmp_path_factory.mktemp("bars")
    ensure_sample(data_dir, SYMBOLS, dt.datetime(2024, 11, 26, 14, 0, tzinfo=dt.UTC))
    return data_dir


@pytest.fixture
async def context(tmp_path: Path) -> AsyncIterator[HandlerContext]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await upgrade(url)
    store = SqlEventStore(url)
    yield HandlerContext(service="strategy", store=store)
    await store.close()


def step_for(
    tmp_path: Path, bars: Path, now: dt.datetime, broker: Broker, **extra: object
) -> SignalStep:
    data_dir = tmp_path / "data"
    shutil.copytree(bars, data_dir)
    settings = Settings(
        data_dir=data_dir,
        sim_now=now.isoformat(),
        strategy_config=extra.pop("config", None) or config_with(tmp_path, FILES),
        **extra,
    )

    async def broker_for(account_id: str) -> Broker:
        return broker

    return SignalStep(settings, broker_for)


def started() -> WorkflowStarted:
    return WorkflowStarted(
        correlation_id=str(uuid.uuid4()),
        account_id="default",
        occurred_at=dt.datetime.now(dt.UTC),
        source="strategy",
        requested_by="test",
        configuration={"live_trading": False},
        trading_date=SESSION,
        force=False,
        idempotency_key=f"paper:default:{SESSION}",
    )


async def test_in_the_close_window_the_signal_uses_todays_live_bar(
    tmp_path: Path, sample_bars: Path, context: HandlerContext
) -> None:
    broker = LastCloseBroker()
    step = step_for(tmp_path, sample_bars, IN_CLOSE_WINDOW, broker)
    start = started()
    [signal] = await step.handle(start, context)

    assert isinstance(signal, SignalGenerated)
    assert signal.as_of == SESSION
    assert signal.causation_id == str(start.event_id)
    assert signal.live_bars and set(signal.live_bars.values()) == {Decimal("101.25")}
    assert set(broker.asked) == set(signal.live_bars)
    assert [s.strategy for s in signal.strategies] == list(FILES)
    assert signal.strategies[0].allocation == {"SPY": Decimal(1)}
    total = sum(signal.consolidated_portfolio.target_allocations.values(), Decimal(0))
    assert abs(total - 1) < Decimal("1e-9")
    assert any(step.kind == "if" for step in signal.strategies[1].trace)
    assert signal.bars_hash and signal.strategy_files_hash and signal.signal_fingerprint


async def test_after_the_close_the_signal_uses_completed_bars_only(
    tmp_path: Path, sample_bars: Path, context: HandlerContext
) -> None:
    data_dir = tmp_path / "fresh"
    ensure_sample(data_dir, SYMBOLS, AFTER_CLOSE)
    broker = LastCloseBroker()
    step = step_for(tmp_path, data_dir, AFTER_CLOSE, broker)
    [signal] = await step.handle(started(), context)

    assert isinstance(signal, SignalGenerated)
    assert signal.as_of == SESSION
    assert signal.live_bars == {}
    assert broker.asked == []


async def test_stale_bars_fail_the_workflow_naming_the_symbols(
    tmp_path: Path, sample_bars: Path, context: HandlerContext
) -> None:
    three_sessions_later = dt.datetime(2024, 12, 2, 20, 45, tzinfo=dt.UTC)
    step = step_for(tmp_path, sample_bars, three_sessions_later, LastCloseBroker())
    [failure] = await step.handle(started(), context)

    assert isinstance(failure, WorkflowFailed)
    assert failure.failure_step == "signal_generation"
    assert "SPY (last bar 2024-11-25)" in failure.failure_reason
    assert "alchemiser data fetch" in failure.failure_reason


async def test_a_broken_strategy_file_fails_the_workflow_naming_file_and_position(
    tmp_path: Path, sample_bars: Path, context: HandlerContext
) -> None:
    config = config_with(tmp_path, FILES)
    (config.parent / "test.clj").write_text('(defsymphony "x" {} (weight-eqaul [(asset "SPY")]))')
    step = step_for(tmp_path, sample_bars, IN_CLOSE_WINDOW, LastCloseBroker(), config=config)
    [failure] = await step.handle(started(), context)

    assert isinstance(failure, WorkflowFailed)
    assert failure.failure_reason.startswith("test.clj:1:")
    assert "weight-equal" in failure.failure_reason


async def test_a_fresh_installation_gets_the_synthetic_sample(
    tmp_path: Path, context: HandlerContext
) -> None:
    settings = Settings(
        data_dir=tmp_path / "empty",
        sim_now=IN_CLOSE_WINDOW.isoformat(),
        strategy_config=config_with(tmp_path, ("test.clj",)),
    )

    async def broker_for(account_id: str) -> Broker:
        return LastCloseBroker()

    [signal] = await SignalStep(settings, broker_for).handle(started(), context)
    assert isinstance(signal, SignalGenerated)
    assert BarStore(tmp_path / "empty").manifest().synthetic
