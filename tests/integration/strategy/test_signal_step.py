"""The strategy step: `WorkflowStarted` in, `SignalGenerated` out — on today's live prices in
the close window, on completed bars outside the session, never on stale bars."""

from __future__ import annotations

import asyncio
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
from shared.events.signals import SignalComputed, SignalGenerated, signal_content_hash
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


def started(account_id: str = "default") -> WorkflowStarted:
    return WorkflowStarted(
        correlation_id=str(uuid.uuid4()),
        account_id=account_id,
        occurred_at=dt.datetime.now(dt.UTC),
        source="strategy",
        requested_by="test",
        configuration={"live_trading": False},
        trading_date=SESSION,
        force=False,
        idempotency_key=f"paper:{account_id}:{SESSION}",
    )


async def test_in_the_close_window_the_signal_uses_todays_live_bar(
    tmp_path: Path, sample_bars: Path, context: HandlerContext
) -> None:
    broker = LastCloseBroker()
    step = step_for(tmp_path, sample_bars, IN_CLOSE_WINDOW, broker)
    start = started()
    [signal] = (await step.handle(start, context)).events

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
    [signal] = (await step.handle(started(), context)).events

    assert isinstance(signal, SignalGenerated)
    assert signal.as_of == SESSION
    assert signal.live_bars == {}
    assert broker.asked == []


async def test_stale_bars_fail_the_workflow_naming_the_symbols(
    tmp_path: Path, sample_bars: Path, context: HandlerContext
) -> None:
    three_sessions_later = dt.datetime(2024, 12, 2, 20, 45, tzinfo=dt.UTC)
    step = step_for(tmp_path, sample_bars, three_sessions_later, LastCloseBroker())
    [failure] = (await step.handle(started(), context)).events

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
    [failure] = (await step.handle(started(), context)).events

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

    [signal] = (await SignalStep(settings, broker_for).handle(started(), context)).events
    assert isinstance(signal, SignalGenerated)
    assert BarStore(tmp_path / "empty").manifest().synthetic


def evaluations(step: SignalStep) -> float:
    """The step's `alchemiser_signal_evaluations_total`, as its /metrics would show it."""
    [metric] = step.evaluated.collect()
    return next(sample.value for sample in metric.samples if sample.name.endswith("_total"))


def account_configs(tmp_path: Path, configs: dict[str, tuple[str, ...]]) -> Path:
    """A mapping file giving each account the config of its files (one folder per config)."""
    mapping: dict[str, str] = {}
    for account, files in configs.items():
        folder = tmp_path / account
        folder.mkdir()
        mapping[account] = str(config_with(folder, files))
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps(mapping))
    return path


async def test_workflows_of_one_strategy_set_share_one_evaluation_and_copy_it_whole(
    tmp_path: Path, sample_bars: Path, context: HandlerContext
) -> None:
    # a and b list the same files with the same weights from different folders: one set.
    mapping = account_configs(
        tmp_path, {"a": FILES, "b": FILES, "c": ("test.clj",), "d": ("test.clj",)}
    )
    broker = LastCloseBroker()
    step = step_for(
        tmp_path, sample_bars, IN_CLOSE_WINDOW, broker, account_strategy_configs=mapping
    )
    starts = [started(account) for account in ("a", "b", "c", "d") for _ in range(5)]
    outcomes = await asyncio.gather(*(step.handle(start, context) for start in starts))

    assert evaluations(step) == 2
    shared = {claim.event.event_id: claim for outcome in outcomes for claim in outcome.claims}
    assert len(shared) == 2
    assert len({claim.stream_id for claim in shared.values()}) == 2
    for start, outcome in zip(starts, outcomes, strict=True):
        [signal] = outcome.events
        assert isinstance(signal, SignalGenerated)
        assert (
            signal.correlation_id
            == start.correlation_id
            == (signal.consolidated_portfolio.correlation_id)
        )
        assert signal.account_id == start.account_id
        assert signal.causation_id == str(start.event_id)
        source = shared[signal.shared_signal_id].event
        assert isinstance(source, SignalComputed)
        assert signal.content_hash == source.content_hash == signal_content_hash(signal)
        assert signal.content_hash == signal_content_hash(source)
    by_account = {
        start.account_id: outcome.events[0] for start, outcome in zip(starts, outcomes, strict=True)
    }
    assert by_account["a"].shared_signal_id == by_account["b"].shared_signal_id
    assert by_account["c"].shared_signal_id != by_account["a"].shared_signal_id
    # One live-price snapshot per evaluation: each symbol asked once per set.
    assert sorted(broker.asked) == sorted([*by_account["a"].live_bars, *by_account["c"].live_bars])


async def test_a_recorded_shared_signal_is_copied_without_evaluating(
    tmp_path: Path, sample_bars: Path, context: HandlerContext
) -> None:
    step = step_for(tmp_path, sample_bars, IN_CLOSE_WINDOW, LastCloseBroker())
    first = await step.handle(started(), context)
    [claim] = first.claims
    assert isinstance(context.store, SqlEventStore)
    await context.store.append(claim.stream_id, 0, [claim.event])

    # Another replica: nothing in memory, the recorded signal in the store.
    other = SignalStep(step._settings, step._broker_for)
    second = await other.handle(started(), context)

    assert evaluations(other) == 0
    assert second.claims == ()
    [signal] = second.events
    assert isinstance(signal, SignalGenerated)
    assert signal.shared_signal_id == claim.event.event_id


async def test_the_next_trading_window_decides_again_on_fresh_prices(
    tmp_path: Path, sample_bars: Path, context: HandlerContext
) -> None:
    broker = LastCloseBroker()
    step = step_for(tmp_path, sample_bars, IN_CLOSE_WINDOW, broker)
    [claim] = (await step.handle(started(), context)).claims
    assert isinstance(context.store, SqlEventStore)
    await context.store.append(claim.stream_id, 0, [claim.event])
    later = SignalStep(
        step._settings.model_copy(
            update={"sim_now": (IN_CLOSE_WINDOW + dt.timedelta(minutes=5)).isoformat()}
        ),
        step._broker_for,
    )
    broker.price = Decimal("99.50")
    [signal] = (await later.handle(started(), context)).events

    assert evaluations(later) == 1
    assert isinstance(signal, SignalGenerated)
    assert signal.shared_signal_id != claim.event.event_id
    assert set(signal.live_bars.values()) == {Decimal("99.50")}


async def test_an_unreadable_account_mapping_fails_the_workflow_naming_the_file(
    tmp_path: Path, sample_bars: Path, context: HandlerContext
) -> None:
    mapping = tmp_path / "accounts.json"
    mapping.write_text('{"a": 3}')
    step = step_for(
        tmp_path, sample_bars, IN_CLOSE_WINDOW, LastCloseBroker(), account_strategy_configs=mapping
    )
    [failure] = (await step.handle(started("a"), context)).events

    assert isinstance(failure, WorkflowFailed)
    assert failure.failure_reason == (
        f"{mapping}: the config of a must be a path to an allocation JSON"
    )
