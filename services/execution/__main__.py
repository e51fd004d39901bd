"""`python -m services.execution`: the same as `alchemiser serve execution`."""

from services.commands.serve import ServiceName, run_module

run_module(ServiceName.EXECUTION)
