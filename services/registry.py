"""The four services by name: where each one's definition is made and the port it listens on
unless told otherwise. `alchemiser serve`, `python -m services.<name>`, the embedded process and
the CLI's choices all read this one table.

A definition's module is imported only when the definition is asked for, so a command that runs
no service (`alchemiser evaluate`) loads no service framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.service.runtime import ServiceDefinition
    from shared.settings import Settings


class ServiceName(StrEnum):
    STRATEGY = "strategy"
    PORTFOLIO = "portfolio"
    EXECUTION = "execution"
    NOTIFY = "notify"
    WEB = "web"


@dataclass(frozen=True)
class RegisteredService:
    name: ServiceName
    default_port: int
    module: str
    """The module whose `definition(settings)` builds the service."""

    def definition(self, settings: Settings, **options: bool) -> ServiceDefinition:
        """`options`: the service's own (the dashboard's `embedded`)."""
        definition: ServiceDefinition = import_module(self.module).definition(settings, **options)
        return definition


SERVICES: dict[ServiceName, RegisteredService] = {
    registered.name: registered
    for registered in (
        RegisteredService(ServiceName.STRATEGY, 8001, "services.strategy.service"),
        RegisteredService(ServiceName.PORTFOLIO, 8002, "services.portfolio.service"),
        RegisteredService(ServiceName.EXECUTION, 8003, "services.execution.service"),
        RegisteredService(ServiceName.NOTIFY, 8004, "services.notify.service"),
    )
}
"""The four services of a workflow, in the order a workflow passes through them."""

READ_SIDE = RegisteredService(ServiceName.WEB, 8005, "services.web.service")
"""The read-only dashboard: no step of any workflow, so it is not among `SERVICES` (the
embedded process and replay run those); `alchemiser serve web` runs it (docs/decisions.md)."""

SERVABLE: dict[ServiceName, RegisteredService] = {**SERVICES, ServiceName.WEB: READ_SIDE}
"""What `alchemiser serve` can run."""
