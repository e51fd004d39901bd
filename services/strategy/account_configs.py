"""Which allocation config each account trades: `ALCHEMISER_ACCOUNT_STRATEGY_CONFIGS` names a JSON
object of account id to allocation config, and every account it does not list trades the
installation's config (docs/trading-rules.md, Shared signals). Accounts that trade the same
strategy set share one evaluation per market snapshot, whichever file names it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from services.strategy.signals import SignalGenerationError
from services.strategy.symphonies import configured_strategy_config
from shared.settings import Settings


def load_account_configs(path: Path) -> dict[str, Path]:
    """The accounts `path` lists, each with its config; relative config paths are read from
    `path`'s folder."""
    setting = "ALCHEMISER_ACCOUNT_STRATEGY_CONFIGS"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SignalGenerationError(
            f"{path}: cannot read the account configs ({error.strerror or error}); check {setting}"
        ) from None
    except json.JSONDecodeError as error:
        raise SignalGenerationError(
            f"{path}:{error.lineno}:{error.colno}: not JSON ({error.msg}); fix the file {setting} "
            "names"
        ) from None
    if not isinstance(data, dict):
        raise SignalGenerationError(
            f'{path}: must be a JSON object {{"account id": "allocation.json", ...}}'
        )
    wrong = sorted(key for key, value in data.items() if not isinstance(value, str) or not value)
    if wrong:
        raise SignalGenerationError(
            f"{path}: the config of {', '.join(wrong)} must be a path to an allocation JSON"
        )
    return {account: path.parent / config for account, config in data.items()}


class AccountConfigs:
    """The mapping, read once per process like the strategy files themselves (a changed
    mapping takes a restart, docs/operations.md, Rolling out a new strategy set)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._mapping: Mapping[str, Path] | None = None

    def config_of(self, account_id: str) -> Path:
        if self._mapping is None:
            listed = self._settings.account_strategy_configs
            self._mapping = load_account_configs(listed) if listed is not None else {}
        return self._mapping.get(account_id) or configured_strategy_config(self._settings)
