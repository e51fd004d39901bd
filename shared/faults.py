"""Fault injection: named points in a service where a test harness may act (kill the process,
raise) to prove that recovery works, without any test condition in the service's own code.

A service calls `reached(point)` on the injector it was given; in production that is the
process's installed injector, which does nothing unless a harness `install`ed another one
before the service started.
"""

from __future__ import annotations

from typing import Protocol


class FaultInjector(Protocol):
    def reached(self, point: str) -> None:
        """Called when the service passes `point`; may not return (a harness may kill the
        process here)."""
        ...


class NoFaults:
    def reached(self, point: str) -> None:
        return None


_installed: FaultInjector = NoFaults()


def install(injector: FaultInjector) -> None:
    """Make `injector` the process's, for every service started after this call."""
    global _installed
    _installed = injector


def installed() -> FaultInjector:
    return _installed
