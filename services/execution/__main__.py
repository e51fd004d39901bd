"""`python -m services.execution`: the same as `alchemiser serve execution`."""

from services.commands.serve import serve_main
from services.registry import ServiceName

serve_main(ServiceName.EXECUTION)
