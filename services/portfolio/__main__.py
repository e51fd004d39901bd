"""`python -m services.portfolio`: the same as `alchemiser serve portfolio`."""

from services.commands.serve import serve_main
from services.registry import ServiceName

serve_main(ServiceName.PORTFOLIO)
