"""`python -m services.portfolio`: the same as `alchemiser serve portfolio`."""

from services.cli import serve_main
from services.registry import ServiceName

serve_main(ServiceName.PORTFOLIO)
