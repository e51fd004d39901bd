"""Structured JSON logs with `correlation_id` and `event_id` bound through contextvars.

Secrets never reach a log line: `configure_logging` takes the secret values in force and a
processor masks them wherever they appear, as a last line of defence behind not logging them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

MASK = "***"


class SecretMasker:
    """Replace any configured secret value inside rendered strings of a log event."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def _mask(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {key: self._mask(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._mask(item) for item in value)
        return value

    def __call__(
        self, _logger: Any, _method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if not self._secrets:
            return event_dict
        for key, value in list(event_dict.items()):
            event_dict[key] = self._mask(value)
        return event_dict


def configure_logging(
    level: str = "INFO", *, secrets: Iterable[str] = (), service: str = ""
) -> None:
    """JSON lines on stderr; stdout stays free for command output (e.g. `evaluate`'s JSONL)."""
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        numeric_level = logging.INFO
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if service:
        processors.append(_static_field("service", service))
    processors += [
        structlog.processors.format_exc_info,
        SecretMasker(secrets),
        structlog.processors.JSONRenderer(),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=numeric_level, stream=sys.stderr, format="%(message)s", force=True)


def _static_field(key: str, value: str) -> Any:
    def add(_logger: Any, _method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        event_dict.setdefault(key, value)
        return event_dict

    return add
