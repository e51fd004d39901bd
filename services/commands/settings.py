"""The settings a command runs with: loaded from the environment or refused in one line, and
the secrets among them that the log masker must hide."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.settings import Settings


def settings_or_exit() -> Settings:
    """Settings, or `SettingsError` naming the bad variable, which the CLI's entry point
    (`services.commands.failures`) turns into one line and exit code 2."""
    from shared.settings import load_settings

    return load_settings()


def secret_values(settings: Settings) -> list[str]:
    """Every secret in force, for the log masker."""
    from shared.service.auth import token_file

    values = [
        secret.get_secret_value()
        for secret in (
            settings.api_token,
            settings.alpaca_key_id,
            settings.alpaca_secret_key,
            settings.smtp_password,
        )
        if secret is not None
    ]
    path = token_file(settings)
    if path.exists():
        values.append(path.read_text(encoding="utf-8").strip())
    return values
