"""Event classes by `(event_type, schema_version)`, and upcasters that lift older payloads.

Only the current version of each type has a class; an older document is lifted one version at a
time by registered upcasters (plain functions over the JSON document) until it reaches the current
version, then validated (docs/architecture.md, Event contract;
docs/trading-rules.md, Schema versions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.events.envelope import Event

Document = dict[str, Any]
Upcaster = Callable[[Document], Document]

_classes: dict[str, type[Event]] = {}
_upcasters: dict[tuple[str, int], Upcaster] = {}


def register_event(cls: type[Event]) -> type[Event]:
    """Make `cls` the current version of its event type."""
    if not isinstance(cls.EVENT_TYPE, str) or not isinstance(cls.SCHEMA_VERSION, int):
        raise ValueError(
            f"{cls.__name__} must pin event_type and schema_version with Literal defaults, e.g. "
            f'event_type: Literal["{cls.__name__}"] = "{cls.__name__}"'
        )
    existing = _classes.get(cls.EVENT_TYPE)
    if existing is not None and existing is not cls:
        raise ValueError(f"event type {cls.EVENT_TYPE} is already registered to {existing}")
    _classes[cls.EVENT_TYPE] = cls
    return cls


def register_upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorate a function lifting a `from_version` document of `event_type` to the next version;
    it returns the new document (schema_version included)."""

    def register(upcaster: Upcaster) -> Upcaster:
        key = (event_type, from_version)
        if key in _upcasters:
            raise ValueError(f"an upcaster for {event_type} v{from_version} is already registered")
        _upcasters[key] = upcaster
        return upcaster

    return register


def event_class(event_type: str, schema_version: int) -> type[Event] | None:
    """The class of a current `(event_type, schema_version)`, None when it is not current."""
    cls = _classes.get(event_type)
    if cls is None or schema_version != cls.SCHEMA_VERSION:
        return None
    return cls


def current_class(event_type: str) -> type[Event] | None:
    return _classes.get(event_type)


def upcaster(event_type: str, from_version: int) -> Upcaster | None:
    return _upcasters.get((event_type, from_version))
