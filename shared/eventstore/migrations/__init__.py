"""Schema management: `upgrade` applies the Alembic migrations shipped in this folder;
`ensure_migrated` is the start-up check that makes a service refuse to run against a missing or
stale schema."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from shared.eventstore.engine import create_store_engine
from shared.eventstore.errors import DatabaseNotMigratedError, EventStoreUnavailableError
from shared.settings import normalise_database_url

MIGRATIONS_DIR = Path(__file__).parent
__all__ = [
    "DatabaseNotMigratedError",
    "alembic_config",
    "current_revisions",
    "describe",
    "ensure_migrated",
    "head_revisions",
    "upgrade",
]

UPGRADE_HINT = "run `alchemiser db upgrade`"
UNREACHABLE_HINT = "start the database server or correct ALCHEMISER_DATABASE_URL"


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic configuration pointing at the migrations shipped inside this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url is not None:
        # ConfigParser interpolation would read a `%` in a password as a format directive.
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def head_revisions() -> frozenset[str]:
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


async def upgrade(database_url: str) -> None:
    """Bring the schema of `database_url` to the latest revision (idempotent)."""
    url = normalise_database_url(database_url)
    config = alembic_config(url)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    # The store's engine: on SQLite its first connection switches the new file to WAL, so the
    # services' connections never race each other to switch it ("database is locked").
    engine = create_store_engine(url, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    except (DBAPIError, OSError) as error:
        raise EventStoreUnavailableError(
            f"cannot migrate {describe(url)}: {_cause(error)}; {UNREACHABLE_HINT}"
        ) from error
    finally:
        await engine.dispose()


async def current_revisions(database_url: str) -> frozenset[str]:
    """The revisions recorded in the database; empty when it was never migrated."""
    url = normalise_database_url(database_url)

    def read(connection: Connection) -> frozenset[str]:
        # A read announces the dialect in two plain-text lines ("Context impl ...") that
        # would break a service's JSON log; only an upgrade has something to say.
        announcer = logging.getLogger("alembic.runtime.migration")
        level = announcer.level
        announcer.setLevel(logging.WARNING)
        try:
            return frozenset(MigrationContext.configure(connection).get_current_heads())
        finally:
            announcer.setLevel(level)

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    except (DBAPIError, OSError) as error:
        raise EventStoreUnavailableError(
            f"cannot reach {describe(url)}: {_cause(error)}; {UNREACHABLE_HINT}"
        ) from error
    finally:
        await engine.dispose()


async def ensure_migrated(database_url: str) -> None:
    """Raise DatabaseNotMigratedError unless the schema is exactly at the shipped head."""
    url = normalise_database_url(database_url)
    current = await current_revisions(url)
    heads = head_revisions()
    if current == heads:
        return
    where = describe(url)
    if not current:
        raise DatabaseNotMigratedError(
            f"the event store schema is missing in {where}; {UPGRADE_HINT}"
        )
    unknown = current - _known_revisions()
    if unknown:
        raise DatabaseNotMigratedError(
            f"the event store in {where} is at revision {', '.join(sorted(unknown))}, newer than "
            f"this release knows; upgrade alchemiser to a release that ships it"
        )
    raise DatabaseNotMigratedError(
        f"the event store schema in {where} is at revision {', '.join(sorted(current))}, behind "
        f"{', '.join(sorted(heads))}; {UPGRADE_HINT}"
    )


def describe(database_url: str) -> str:
    """The URL without its password, for messages and logs."""
    return make_url(database_url).render_as_string(hide_password=True)


def _cause(error: BaseException) -> str:
    """The driver's own words on one line (SQLAlchemy appends a SQL dump and a help link)."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    return " ".join(f"{type(cause).__name__}: {cause}".split())


def _known_revisions() -> frozenset[str]:
    scripts = ScriptDirectory.from_config(alembic_config())
    return frozenset(script.revision for script in scripts.walk_revisions())
