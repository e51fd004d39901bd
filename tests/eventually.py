"""Polling for async tests: wait for a condition instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], T | Awaitable[T]],
    *,
    timeout_s: float = 10.0,
    interval_s: float = 0.05,
    message: str = "condition not met",
) -> T:
    """Call `probe` until it returns a truthy value (awaited if need be); fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while True:
        result = probe()
        last = await result if inspect.isawaitable(result) else result
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} within {timeout_s} s (last value: {last!r})")
        await asyncio.sleep(interval_s)
