"""`python -m services.portfolio`: the same as `alchemiser serve portfolio`."""

from services.commands.serve import ServiceName, run_module

run_module(ServiceName.PORTFOLIO)
