"""Decide once, trade per account (docs/trading-rules.md, Shared signals): 200 accounts on 5
strategy configs through the distributed system — each distinct signal evaluated exactly once
(the strategy service's own counter, and one `SignalComputed` per config in the store), every
account's `SignalGenerated` a whole copy of its config's signal, and every account holding its
own target."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.strategy.symphonies import bundled_config
from shared.events import (
    RebalancePlanned,
    SignalComputed,
    SignalGenerated,
    WorkflowCompleted,
    signal_content_hash,
)
from shared.eventstore.schema import events
from tests.chaos.invariants import broker_findings
from tests.e2e.cluster import Cluster, sample_bars

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACCOUNTS = 200
WORKFLOWS_WITHIN_S = 150
CONFIGS: tuple[dict[str, float], ...] = (
    {"test.clj": 1.0},
    {"6-TQQQ-FLT.clj": 1.0},
    {"test.clj": 0.5, "6-TQQQ-FLT.clj": 0.5},
    {"TECL.clj": 0.6, "Ult.clj": 0.4},
    {"test.clj": 0.2, "TECL.clj": 0.3, "6-TQQQ-FLT.clj": 0.5},
)


def write_configs(folder: Path) -> Path:
    """Each config in a folder of its own beside copies of its files; the account mapping
    gives account n the config n mod 5."""
    mapping: dict[str, str] = {}
    for index, weights in enumerate(CONFIGS):
        config_dir = folder / f"config-{index}"
        config_dir.mkdir(parents=True)
        for name in weights:
            shutil.copy(bundled_config().parent / name, config_dir / name)
        (config_dir / "allocation.json").write_text(
            json.dumps({"files": list(weights), "allocations": weights})
        )
    for n in range(ACCOUNTS):
        mapping[f"acct-{n}"] = f"config-{n % len(CONFIGS)}/allocation.json"
    path = folder / "accounts.json"
    path.write_text(json.dumps(mapping))
    return path


async def test_200_accounts_on_5_configs_evaluate_each_signal_once_and_trade_their_own_target(
    tmp_path: Path,
) -> None:
    bars = sample_bars(tmp_path / "bars")
    mapping = write_configs(tmp_path / "strategies")
    settings = {"ALCHEMISER_ACCOUNT_STRATEGY_CONFIGS": str(mapping)}
    async with Cluster(tmp_path / "cluster", bars, settings) as cluster:
        begun = time.monotonic()
        await cluster.start_all()
        answers = await asyncio.gather(
            *(cluster.trigger({"force": True, "account_id": f"acct-{n}"}) for n in range(ACCOUNTS))
        )
        ids = [answer.json()["id"] for answer in answers]
        # Bounded so that the test ends within 3 minutes: the workflows get 150 s from the start
        # of the services (about 20 s when measured), the checks below the rest.
        wait_s = WORKFLOWS_WITHIN_S - (time.monotonic() - begun)
        views = await asyncio.gather(*(cluster.finished(i, timeout_s=wait_s) for i in ids))
        assert Counter(view["status"] for view in views) == {"completed": ACCOUNTS}
        print(f"200 workflows finished {time.monotonic() - begun:.1f} s after the start")

        assert await cluster.signal_evaluations() == len(CONFIGS)
        assert cluster.store is not None
        async with cluster.store.engine.connect() as connection:
            computed = (
                await connection.execute(
                    sa.select(sa.func.count()).where(events.c.event_type == "SignalComputed")
                )
            ).scalar_one()
        assert computed == len(CONFIGS)

        shared_by_config: dict[int, set[str]] = defaultdict(set)
        for n, workflow_id in enumerate(ids):
            history = await cluster.events(workflow_id)
            kinds = Counter(event.event_type for event in history)
            assert kinds["SignalGenerated"] == kinds["WorkflowCompleted"] == 1
            assert {event.account_id for event in history} == {f"acct-{n}"}
            [signal] = [e for e in history if isinstance(e, SignalGenerated)]
            assert signal.shared_signal_id is not None
            [source] = await cluster.store.read_correlation(str(signal.shared_signal_id))
            assert isinstance(source.event, SignalComputed)
            assert source.event.event_id == signal.shared_signal_id
            assert signal.content_hash == source.event.content_hash == signal_content_hash(signal)
            assert set(signal.consolidated_portfolio.source_strategies) == set(
                CONFIGS[n % len(CONFIGS)]
            )
            shared_by_config[n % len(CONFIGS)].add(str(signal.shared_signal_id))
            [plan] = [e for e in history if isinstance(e, RebalancePlanned)]
            targets = {item.symbol: item.target_weight for item in plan.rebalance_plan.items}
            wanted = signal.consolidated_portfolio.target_allocations
            # The planner normalises the weights: equal to the signal's within rounding.
            assert {s for s, w in targets.items() if w} == set(wanted)
            assert all(abs(targets[s] - w) < Decimal("1e-12") for s, w in wanted.items())
            assert any(isinstance(e, WorkflowCompleted) for e in history)
            assert await broker_findings(cluster.store, history, f"acct-{n}") == []
        assert all(len(ids_) == 1 for ids_ in shared_by_config.values())
        assert len(set().union(*shared_by_config.values())) == len(CONFIGS)
