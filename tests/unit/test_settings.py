from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from shared.settings import SettingsError, load_settings, normalise_database_url


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ALCHEMISER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_match_the_target_summary() -> None:
    settings = load_settings()
    assert settings.broker == "simulated"
    assert settings.trading_mode == "paper"
    assert settings.cash_reserve == Decimal("0.01")
    assert settings.exec_fill_wait_s == 10
    assert settings.exec_max_repegs == 1
    assert settings.workflow_deadline_s == 600
    assert settings.smtp_host is None
    assert settings.smtp_port == 587


def test_invalid_setting_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALCHEMISER_SIM_SPREAD_BPS", "wide")
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("ALCHEMISER_SIM_SPREAD_BPS:")
    assert "'wide'" in message


def test_secret_values_are_not_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALCHEMISER_SMTP_PORT", "s3cret-port")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "ALCHEMISER_SMTP_PORT" in str(error.value)


def test_live_mode_needs_the_alpaca_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALCHEMISER_TRADING_MODE", "live")
    with pytest.raises(SettingsError, match="ALCHEMISER_BROKER=alpaca"):
        load_settings()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_plain_database_urls_get_async_drivers(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


def test_default_database_is_a_sqlite_file_under_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ALCHEMISER_DATA_DIR", str(tmp_path / "d"))
    settings = load_settings()
    assert settings.resolved_database_url == (
        f"sqlite+aiosqlite:///{(tmp_path / 'd' / 'alchemiser.db').resolve()}"
    )
    assert settings.resolved_cache_dir == tmp_path / "d" / "cache"


def test_email_recipients_default_to_the_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALCHEMISER_EMAIL_FROM", "me@example.org")
    assert load_settings().email_recipients == ["me@example.org"]
    monkeypatch.setenv("ALCHEMISER_EMAIL_TO", "a@example.org, b@example.org")
    assert load_settings().email_recipients == ["a@example.org", "b@example.org"]


def test_notify_urls_are_separated_by_whitespace_and_keep_their_commas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "ALCHEMISER_NOTIFY_URLS",
        "tgram://123:abc/-100200/ \n mailtos://u:p@example.org?to=a@example.org,b@example.org",
    )
    assert load_settings().notify_url_list == [
        "tgram://123:abc/-100200/",
        "mailtos://u:p@example.org?to=a@example.org,b@example.org",
    ]


def test_a_notify_url_apprise_does_not_know_is_refused_naming_its_place_not_its_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALCHEMISER_NOTIFY_URLS", "ntfy://alerts slak://T0/B0/secret-token")
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert message.startswith("ALCHEMISER_NOTIFY_URLS: URL 2 (slak) is not one apprise")
    assert "secret-token" not in message and "\n" not in message


def test_a_simulated_now_that_is_not_a_datetime_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALCHEMISER_SIM_NOW", "garbage")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert str(error.value).startswith("ALCHEMISER_SIM_NOW: not an ISO datetime")
    assert "\n" not in str(error.value)
