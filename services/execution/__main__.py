"""`python -m services.execution`: the same as `alchemiser serve execution`."""

from services.cli import serve_main
from services.registry import ServiceName

serve_main(ServiceName.EXECUTION)
