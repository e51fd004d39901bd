"""`python -m services.strategy`: the same as `alchemiser serve strategy`."""

from services.commands.serve import ServiceName, run_module

run_module(ServiceName.STRATEGY)
