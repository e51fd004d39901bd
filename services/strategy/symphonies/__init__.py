"""The bundled strategy files and allocation configs: the default configuration."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from shared.settings import Settings


def bundled_config() -> Path:
    """The bundled production allocation config."""
    return Path(str(resources.files(__name__) / "allocation.prod.json"))


def configured_strategy_config(settings: Settings) -> Path:
    """The installation's allocation config: `ALCHEMISER_STRATEGY_CONFIG`, else the bundled
    production config."""
    return settings.strategy_config or bundled_config()
