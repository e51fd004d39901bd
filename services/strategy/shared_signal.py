"""Decide once, trade per account (docs/trading-rules.md, Shared signals).

A signal is a function of the strategy set, the bars, the as-of date and the live prices. All
workflows that trade one strategy set on one market snapshot share one evaluation: the first
records it as `SignalComputed` in the snapshot's stream, expecting the stream empty, and every
workflow's `SignalGenerated` is a copy of it with the workflow's envelope, the shared signal's id
and its content hash. Inside one process concurrent workflows of one snapshot wait for a single
evaluation; across processes the store lets exactly one record it, and a loser runs again on the
winner's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from services.strategy import dsl, signals
from services.strategy.dsl import indicators
from services.strategy.signals import StrategySet, decimal_text
from shared import allocation_config
from shared.events.signals import DECIDED_FIELDS, SignalComputed, SignalGenerated
from shared.events.workflow import WorkflowStarted
from shared.messaging.consumer import HandlerContext

STREAM_PREFIX = "signal/"
CLOSED_WINDOW = "closed"
"""The window of a signal decided outside the session: completed bars only, no live prices."""
KEPT_EVALUATIONS = 64
"""Evaluations a process keeps in memory for its concurrent workflows; older ones are read back
from the store."""


@cache
def engine_fingerprint() -> str:
    """SHA-256 over the decision core as this process runs it — the source of the DSL package
    and the combining rules, and which function computes each indicator — so a changed rule
    decides again instead of reusing a signal the old code recorded. Taken at first use, after
    any start-up code has set the indicator table."""
    digest = hashlib.sha256()
    for path in sorted(Path(str(dsl.__file__)).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    for module in (signals, allocation_config):
        digest.update(Path(str(module.__file__)).read_bytes())
    for name, indicator in sorted(indicators.INDICATORS.items()):
        for formula in (indicator.formula, indicator.group_formula):
            where = f"{formula.__module__}.{formula.__qualname__}" if formula else "-"
            digest.update(f"\n{name}\0{where}".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class SnapshotKey:
    """What one evaluation is shared by: the strategy set's content, the as-of date, the
    trading window and the bar store's content."""

    strategy_set_hash: str
    as_of: dt.date
    window: str
    bar_store_hash: str

    @property
    def stream_id(self) -> str:
        return (
            f"{STREAM_PREFIX}{self.strategy_set_hash}/{self.as_of.isoformat()}/{self.window}/"
            f"{self.bar_store_hash}"
        )


def strategy_set_hash(strategy_set: StrategySet) -> str:
    """SHA-256 hex over the engine's source, each file's normalised weight and the files' names
    and contents: two configs that weigh the same files alike decide alike, whatever their
    paths."""
    digest = hashlib.sha256(f"{engine_fingerprint()}\n{strategy_set.files_hash}".encode())
    for name, weight in strategy_set.config.file_weights.items():
        digest.update(f"\n{name}\0{decimal_text(weight)}".encode())
    return digest.hexdigest()


def trading_window(now: dt.datetime, session_open: bool, window_s: int) -> str:
    """`closed` outside the session; in it, the UTC start of the `window_s`-second window
    holding `now` (windows are aligned to the epoch, so every process agrees on them)."""
    if not session_open:
        return CLOSED_WINDOW
    epoch_s = int(now.timestamp())
    start = dt.datetime.fromtimestamp(epoch_s - epoch_s % window_s, dt.UTC)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ")


def workflow_signal(
    shared: SignalComputed, cause: WorkflowStarted, context: HandlerContext
) -> SignalGenerated:
    """The workflow's `SignalGenerated`: the shared decision whole, under the workflow's
    envelope, naming the shared signal and its content hash."""
    portfolio = shared.consolidated_portfolio.model_copy(
        update={"correlation_id": cause.correlation_id}
    )
    return context.follow_up(
        cause,
        SignalGenerated,
        **{name: getattr(shared, name) for name in DECIDED_FIELDS},
        consolidated_portfolio=portfolio,
        shared_signal_id=shared.event_id,
        content_hash=shared.content_hash,
    )


class SingleFlight:
    """One evaluation per key in this process: the first caller starts it, callers that come
    while it runs await the same result. A failed evaluation is forgotten, so a later caller
    tries again; a cancelled caller does not cancel the evaluation the others wait for."""

    def __init__(self, keep: int = KEPT_EVALUATIONS) -> None:
        self._keep = keep
        self._running: OrderedDict[str, asyncio.Future[SignalComputed]] = OrderedDict()

    async def run(
        self, key: str, evaluate: Callable[[], Awaitable[SignalComputed]]
    ) -> SignalComputed:
        future = self._running.get(key)
        if future is None:
            future = asyncio.ensure_future(evaluate())
            future.add_done_callback(lambda done: self._forget_failed(key, done))
            self._running[key] = future
            while len(self._running) > self._keep:
                self._running.popitem(last=False)
        return await asyncio.shield(future)

    def _forget_failed(self, key: str, done: asyncio.Future[SignalComputed]) -> None:
        if (done.cancelled() or done.exception() is not None) and self._running.get(key) is done:
            del self._running[key]
