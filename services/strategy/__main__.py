"""`python -m services.strategy`: the same as `alchemiser serve strategy`."""

from services.cli import serve_main
from services.registry import ServiceName

serve_main(ServiceName.STRATEGY)
