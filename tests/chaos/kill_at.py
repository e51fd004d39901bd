"""`python -m tests.chaos.kill_at POINT ARGS...`: the `alchemiser` command (`alchemiser ARGS...`)
with a fault injector that SIGKILLs the process when it reaches the fault point POINT, so a
chaos test can kill a service at the worst moment, e.g. `after_submit` in execution: the broker
took the order and the commit that records it has not happened."""

from __future__ import annotations

import os
import signal
import sys

import structlog

from services.cli import main
from shared import faults


class KillAt:
    def __init__(self, point: str) -> None:
        self.point = point

    def reached(self, point: str) -> None:
        if point == self.point:
            structlog.get_logger(__name__).warning(
                "fault point reached; killing the process", fault_point=point
            )
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    point, *arguments = sys.argv[1:]
    faults.install(KillAt(point))
    sys.argv = ["alchemiser", *arguments]
    main()
