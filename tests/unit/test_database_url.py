"""ALCHEMISER_DATABASE_URL with several PostgreSQL hosts
(docs/operations.md, PostgreSQL high availability): the libpq form becomes the one SQLAlchemy's
asyncpg dialect takes, and what the driver is then given to connect with is every host, in
order, with its port."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects.postgresql.asyncpg import dialect
from sqlalchemy.engine import make_url

from shared.settings import SettingsError, load_settings, normalise_database_url

MULTI_HOST = "postgresql://u:p%40ss@db-a:55432,db-b/alchemiser?target_session_attrs=read-write"


def connect_arguments(url: str) -> dict[str, object]:
    """What both the engine and the store's own asyncpg connections pass to asyncpg.connect."""
    _, arguments = dialect().create_connect_args(make_url(normalise_database_url(url)))
    return arguments


def test_a_libpq_multi_host_url_reaches_the_driver_as_every_host_with_its_port() -> None:
    assert normalise_database_url(MULTI_HOST) == (
        "postgresql+asyncpg://u:p%40ss@/alchemiser"
        "?host=db-a:55432&host=db-b:5432&target_session_attrs=read-write"
    )
    assert connect_arguments(MULTI_HOST) == {
        "user": "u",
        "password": "p@ss",
        "database": "alchemiser",
        "host": ["db-a", "db-b"],
        "port": [55432, 5432],
        "target_session_attrs": "read-write",
    }


@pytest.mark.parametrize(
    "url",
    [
        MULTI_HOST,
        "postgresql+asyncpg://u@/db?host=a:1&host=b&target_session_attrs=primary&ssl=require",
        "postgresql://u@h:5432/db",
        "postgresql://u@h/db?target_session_attrs=read-write",
    ],
)
def test_normalising_twice_changes_nothing_more(url: str) -> None:
    once = normalise_database_url(url)
    assert normalise_database_url(once) == once


def test_the_dialect_s_own_multi_host_form_gets_the_default_port_and_keeps_its_options() -> None:
    arguments = connect_arguments(
        "postgresql+asyncpg://u@/db?host=a:1&host=b&target_session_attrs=primary&ssl=require"
    )
    assert (arguments["host"], arguments["port"]) == (["a", "b"], [1, 5432])
    assert (arguments["target_session_attrs"], arguments["ssl"]) == ("primary", "require")


def test_one_host_stays_as_written() -> None:
    url = "postgresql+asyncpg://u@h:5432/db?target_session_attrs=read-write"
    assert normalise_database_url(url) == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://h1,h2/db", "lists 2 hosts but not target_session_attrs=read-write"),
        ("postgresql://h1,h2/db?target_session_attrs=any", "lists 2 hosts but not"),
        ("postgresql://h1,,h2/db?target_session_attrs=read-write", "an empty host"),
        ("postgresql://h1:x,h2/db?target_session_attrs=read-write", "host 'h1:x': the port"),
        ("postgresql://h1:0,h2/db?target_session_attrs=read-write", "host 'h1:0': the port"),
        ("postgresql://h/db?target_session_attrs=readwrite", "target_session_attrs=readwrite is"),
        (
            "postgresql://[::1]:5,h2/db?target_session_attrs=read-write",
            "host '[::1]:5': a multi-host",
        ),
        (
            "postgresql+asyncpg://u@/db?host=a,b&port=1,2&target_session_attrs=read-write",
            "give each of several hosts its port as HOST:PORT",
        ),
    ],
)
def test_a_malformed_multi_host_url_stops_the_process_naming_the_setting_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, url: str, problem: str
) -> None:
    monkeypatch.setenv("ALCHEMISER_DATABASE_URL", url)
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert message.startswith(f"ALCHEMISER_DATABASE_URL: {problem}")
    assert "\n" not in message


def test_a_multi_host_url_is_refused_without_showing_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALCHEMISER_DATABASE_URL", "postgresql://u:s3cret@h1,h2/db")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "s3cret" not in str(error.value)
    assert "u:***@h1,h2/db" in str(error.value)
