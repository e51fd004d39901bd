from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from shared.settings import (
    OTHER_VARIABLES,
    SettingsError,
    known_variables,
    load_settings,
    normalise_database_url,
    unknown_variable,
)

REPO = Path(__file__).resolve().parents[2]
SCANNED = [
    "services", "shared", "tests", "benchmarks", "scripts", "deploy", "docs", ".ci",
    "compose.yaml", "Makefile", "README.md", "DEVELOPERS.md", ".env.example", "pyproject.toml",
]  # fmt: skip
NOT_SCANNED = {REPO / "docs" / "decisions.md", Path(__file__).resolve()}
BINARY = {".png", ".parquet", ".db", ".pyc", ".gz", ".ico", ".woff2", ".clj"}


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


@pytest.mark.parametrize(
    ("given", "shown"),
    [("mysql://x:pw@y/z", "'mysql://x:***@y/z'"), ("notaurl", "'notaurl'")],
)
def test_a_database_url_no_driver_serves_is_refused_without_its_password(
    monkeypatch: pytest.MonkeyPatch, given: str, shown: str
) -> None:
    monkeypatch.setenv("ALCHEMISER_DATABASE_URL", given)
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert message.startswith("ALCHEMISER_DATABASE_URL: ")
    assert "postgresql://USER:PASSWORD@HOST:5432/DB" in message
    assert message.endswith(f"(got {shown})")


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


def test_a_misspelled_setting_stops_naming_it_and_the_closest_known_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALCHEMISER_DATABSE_URL", "postgresql://u@h/db")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert str(error.value).startswith(
        "ALCHEMISER_DATABSE_URL: not a setting; did you mean ALCHEMISER_DATABASE_URL?"
    )


def test_a_misspelled_setting_in_the_env_file_stops_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("ALCHEMISER_SMTP_HOTS=mail\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match="did you mean ALCHEMISER_SMTP_HOST"):
        load_settings()


def test_a_name_close_to_none_is_refused_without_a_guess() -> None:
    message = unknown_variable(["ALCHEMISER_FOO", "PATH"])
    assert message is not None
    assert message.startswith("ALCHEMISER_FOO: not a setting; no known name is close to it")


def test_the_test_variables_are_known_and_documented() -> None:
    developers = (REPO / "DEVELOPERS.md").read_text(encoding="utf-8")
    assert unknown_variable(OTHER_VARIABLES) is None
    for name in OTHER_VARIABLES:
        assert f"`{name}`" in developers, f"{name} is not documented in DEVELOPERS.md"


def test_every_alchemiser_name_the_repository_writes_is_known() -> None:
    """What the repository itself sets or documents (tests, benchmarks, scripts, deploy files,
    compose, CI, docs) must never be refused. Left out: the decisions document, which records names
    that were retired, and this file, which misspells names on purpose."""
    places = [REPO / name for name in SCANNED]
    files = [
        path for place in places for path in ([place] if place.is_file() else place.rglob("*"))
    ]
    found: dict[str, Path] = {}
    for path in files:
        if path.is_dir() or path.suffix in BINARY or path in NOT_SCANNED:
            continue
        for name in re.findall(r"ALCHEMISER_[A-Z0-9_]+", path.read_text(encoding="utf-8")):
            if not name.endswith("_"):  # a prefix such as ALCHEMISER_SIM_*
                found.setdefault(name, path)
    assert found, "the scan found no ALCHEMISER_ name at all"
    unknown = {name: str(path.relative_to(REPO)) for name, path in found.items()}
    for name in known_variables():
        unknown.pop(name, None)
    assert unknown == {}
