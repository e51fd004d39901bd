"""`python -m services.notify`: the same as `alchemiser serve notify`."""

from services.commands.serve import ServiceName, run_module

run_module(ServiceName.NOTIFY)
