"""`python -m services.notify`: the same as `alchemiser serve notify`."""

from services.commands.serve import serve_main
from services.registry import ServiceName

serve_main(ServiceName.NOTIFY)
