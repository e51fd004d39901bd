"""`python -m services.strategy`: the same as `alchemiser serve strategy`."""

from services.commands.serve import serve_main
from services.registry import ServiceName

serve_main(ServiceName.STRATEGY)
