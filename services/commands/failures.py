"""The one place where a failure the user can fix becomes one line on stderr and an exit code.

Commands raise; they never print a failure or choose an exit code for one. Every entry point
(`alchemiser ...` and `python -m services.<name>`) runs its command through `run_command`, so a
bad setting, a busy port or a database that does not answer reads the same in every command:

- 2: a setting or option must change (the line names it);
- 3: a server does not answer (the line names it, without its password);
- 1: anything else the user must act on, e.g. a database that was never migrated.

`alchemiser trigger` keeps its own 3 for a refused trigger (docs/operations.md, The schedule) and
reports an unreachable strategy service with 1, so a scheduler never takes an outage for the
expected refusal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

BAD_SETTING_EXIT_CODE = 2
UNREACHABLE_EXIT_CODE = 3
FAILED_EXIT_CODE = 1


class OptionError(Exception):
    """A command-line option cannot be used as given; the message names it and what to do."""


class CommandFailedError(Exception):
    """The command cannot do what was asked (e.g. the account does not exist); the message says
    why and what to do instead."""


def exit_code_of(error: Exception) -> int | None:
    """The exit code of a failure the user can fix, or None for a bug (which keeps its
    traceback). The error kinds are looked up among the modules already imported, never imported
    here: an error of a module nobody imported cannot have been raised, and importing the event
    store's package (SQLAlchemy, Alembic) only to fail `alchemiser evaluate` would be slow."""
    exit_codes = (
        ("shared.settings", "SettingsError", BAD_SETTING_EXIT_CODE),
        ("shared.eventstore.errors", "EventStoreUnavailableError", UNREACHABLE_EXIT_CODE),
        ("shared.eventstore.errors", "DatabaseNotMigratedError", FAILED_EXIT_CODE),
    )
    if isinstance(error, OptionError):
        return BAD_SETTING_EXIT_CODE
    if isinstance(error, CommandFailedError):
        return FAILED_EXIT_CODE
    for module_name, kind_name, code in exit_codes:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(error, getattr(module, kind_name)):
            return code
    return None


def run_command(command: Callable[[], object]) -> None:
    """Run an entry point; a failure the user can fix ends it with one line and its code."""
    try:
        command()
    except Exception as error:
        code = exit_code_of(error)
        if code is None:
            raise
        typer.echo(f"alchemiser: {error}", err=True)
        sys.exit(code)
