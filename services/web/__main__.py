"""`python -m services.web`: the same as `alchemiser serve web`."""

from services.commands.serve import serve_main
from services.registry import ServiceName

serve_main(ServiceName.WEB)
