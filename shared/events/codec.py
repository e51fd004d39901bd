"""Events to compact JSON bytes and back, with upcasting of older schema versions.

Decimals travel as JSON strings (pydantic's JSON mode), so amounts round-trip exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from shared.events import catalogue  # noqa: F401  (registers the event types and upcasters)
from shared.events.envelope import Event
from shared.events.errors import InvalidEventError, MalformedEventError, UnknownEventError
from shared.events.registry import current_class, upcaster


def encode(event: Event) -> bytes:
    """Compact UTF-8 JSON of the whole event (envelope and payload)."""
    return event.model_dump_json().encode()


def decode(data: bytes | str | Mapping[str, Any]) -> Event:
    """The current-version event for a JSON document, lifting older versions on the way."""
    document = dict(data) if isinstance(data, Mapping) else _parse(data)
    return decode_document(document)


def decode_document(document: dict[str, Any]) -> Event:
    """As `decode`, for a freshly built dict the caller hands over (it may be modified)."""
    event_type = document.get("event_type")
    schema_version = document.get("schema_version")
    cls = current_class(event_type) if isinstance(event_type, str) else None
    if cls is not None and type(schema_version) is int and schema_version == cls.SCHEMA_VERSION:
        try:
            return cls.model_validate(document)
        except ValidationError as error:
            raise _invalid(document, cls, error) from error
    event_id = _event_id(document)
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEventError(f"event {event_id}: no event_type", event_id=event_id)
    if not isinstance(schema_version, int) or isinstance(schema_version, bool):
        raise MalformedEventError(
            f"event {event_id} ({event_type}): schema_version must be an integer, "
            f"got {schema_version!r}",
            event_id=event_id,
        )
    if cls is None:
        raise UnknownEventError(
            f"event {event_id}: unknown event type {event_type!r} (schema_version "
            f"{schema_version}); this build knows none by that name — upgrade alchemiser or "
            f"register the type",
            event_id=event_id,
        )
    document = _lift(document, event_id, event_type, schema_version, cls.SCHEMA_VERSION)
    try:
        return cls.model_validate(document)
    except ValidationError as error:
        raise _invalid(document, cls, error) from error


def _parse(data: bytes | str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedEventError(f"event document is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise MalformedEventError(
            f"event document must be a JSON object, got {type(document).__name__}"
        )
    return document


def _event_id(document: Mapping[str, Any]) -> str:
    value = document.get("event_id")
    return str(value) if value is not None else "<no event_id>"


def _lift(
    document: dict[str, Any], event_id: str, event_type: str, version: int, current: int
) -> dict[str, Any]:
    if version > current or version < 1:
        raise UnknownEventError(
            f"event {event_id}: {event_type} schema_version {version} is unknown (this build "
            f"reads versions 1 to {current}); upgrade alchemiser to read it",
            event_id=event_id,
        )
    while version < current:
        lift = upcaster(event_type, version)
        if lift is None:
            raise UnknownEventError(
                f"event {event_id}: no upcaster lifts {event_type} v{version} to v{version + 1}",
                event_id=event_id,
            )
        document = lift(document)
        version += 1
        if document.get("schema_version") != version:
            raise UnknownEventError(
                f"event {event_id}: the upcaster of {event_type} v{version - 1} did not produce "
                f"schema_version {version}",
                event_id=event_id,
            )
    return document


def _invalid(document: Mapping[str, Any], cls: type[Event], error: ValidationError) -> Exception:
    event_id = _event_id(document)
    return InvalidEventError(
        f"event {event_id} ({cls.EVENT_TYPE} v{cls.SCHEMA_VERSION}) is invalid: "
        f"{_summarise(error)}",
        event_id=event_id,
    )


def _summarise(error: ValidationError) -> str:
    parts = []
    for detail in error.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in detail["loc"]) or "<event>"
        parts.append(f"{location}: {detail['msg']}")
    return "; ".join(parts)
