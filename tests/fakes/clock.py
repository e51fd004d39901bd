"""One clock a test owns and hands to everything that asks the time: the loopback Alpaca server,
the simulated broker and the code under test, so that "the session closes in two minutes" means
the same moment to all of them."""

from __future__ import annotations

import datetime as dt
import threading
import time

from shared.market_clock import NEW_YORK

IN_SESSION = dt.datetime(2026, 11, 24, 11, 0, tzinfo=NEW_YORK)
"""A Tuesday morning, the session open: where a test's clock starts unless it says otherwise."""


class ControlledClock:
    """Runs from `start` at the pace of real time (timeouts, latency and rate windows still
    pass), or stands still when frozen; `set` and `advance` move it. Safe to read from the
    server's thread while the test moves it."""

    def __init__(self, start: dt.datetime, *, frozen: bool = False) -> None:
        if start.tzinfo is None:
            raise ValueError(f"{start.isoformat()} has no time zone; give an aware start")
        self._lock = threading.Lock()
        self._start = start
        self._started_at = time.monotonic()
        self._frozen = frozen

    def __call__(self) -> dt.datetime:
        with self._lock:
            if self._frozen:
                return self._start
            return self._start + dt.timedelta(seconds=time.monotonic() - self._started_at)

    def set(self, moment: dt.datetime, *, frozen: bool = True) -> None:
        """Jump to `moment`; frozen there unless `frozen=False`."""
        if moment.tzinfo is None:
            raise ValueError(f"{moment.isoformat()} has no time zone; give an aware moment")
        with self._lock:
            self._start = moment
            self._started_at = time.monotonic()
            self._frozen = frozen

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._start += dt.timedelta(seconds=seconds)
