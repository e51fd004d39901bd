"""The request budget's split and its limiter (docs/trading-rules.md, Request budget): the shares
add up to no more than the total, and a process's limiter admits no more than its share in any
rolling window however hard it is pushed."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.broker.request_budget import BudgetShare, RequestBudget
from tests.fakes.alpaca.budget import max_in_window


@pytest.mark.parametrize("total", [10, 180, 200, 1000])
def test_the_shares_add_up_to_no_more_than_the_total(total: int) -> None:
    shares = {share: RequestBudget.share_of(total, share).requests for share in BudgetShare}
    assert sum(shares.values()) <= total
    assert shares[BudgetShare.EXECUTION] == total // 2


async def test_a_limiter_pushed_flat_out_stays_inside_its_share_in_every_rolling_window() -> None:
    budget = RequestBudget(20, window_s=1.0)
    limiter = budget.limiter()
    times: list[float] = []
    deadline = time.monotonic() + 2.5

    async def caller() -> None:
        while time.monotonic() < deadline:
            async with limiter:
                times.append(time.monotonic())

    await asyncio.gather(*(caller() for _ in range(8)))

    assert max_in_window(times, budget.window_s) <= budget.requests
    assert len(times) >= 2 * budget.requests  # and it does not starve: about 20 a second
