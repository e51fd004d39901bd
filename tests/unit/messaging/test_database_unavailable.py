"""Which errors mean "the database is away, wait for it" rather than "this message is bad": a
PostgreSQL restart answers a new connection with its own SQLSTATE before it refuses them."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError

from shared.messaging.consumer import is_database_unavailable


class DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"server said {sqlstate}")
        self.sqlstate = sqlstate


def wrapped(sqlstate: str) -> DBAPIError:
    driver = AsyncAdapt_asyncpg_dbapi.Error(f"sqlstate {sqlstate}", DriverError(sqlstate))
    return DBAPIError("SELECT 1", None, driver)


@pytest.mark.parametrize(
    ("sqlstate", "unavailable"),
    [
        ("57P01", True),  # admin_shutdown: the server is stopping
        ("57P02", True),  # crash_shutdown
        ("57P03", True),  # cannot_connect_now: "the database system is shutting down"
        ("08006", True),  # connection_failure
        ("08001", True),  # unable to connect
        ("23505", False),  # unique_violation: the statement, not the server
        ("57014", False),  # query_canceled
        ("42P01", False),  # undefined_table
    ],
)
def test_a_server_going_away_is_waited_for_and_a_bad_statement_is_not(
    sqlstate: str, unavailable: bool
) -> None:
    assert is_database_unavailable(wrapped(sqlstate)) is unavailable
