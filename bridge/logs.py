"""Logging set-up: levels per module from the config, one line per event, no secrets.

Every line names what it concerns: work in a portal's queue carries ``network=`` and
``portal=``, a login's background tasks carry ``network=`` and ``login=``. The core sets
that context with :func:`portal_context` and :func:`log_context`; asyncio tasks inherit
it from where they were created, so a connector's poller needs no logging changes.

Tracebacks are folded into the event's line, and anything that looks like a credential
is masked before a line is written.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

from .config import LoggingConfig

_context: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "bridge_log_context", default=()
)

# Anything that looks like a credential in a log line is masked before it is written.
# key=value, key: value, "key": "value" (JSON), ?key=value (URLs).
_SECRET = re.compile(
    r"(?i)(access_token|as_token|hs_token|shared_secret|secret|token|password|pickle_key|session)"
    r"([\"']?\s*[:=]\s*[\"']?)([^\s&\"',}]+)"
)
_BEARER = re.compile(r"(?i)(bearer\s+)([^\s\"',}]+)")


def mask_secrets(text: str) -> str:
    return _BEARER.sub(r"\1<redacted>", _SECRET.sub(r"\1\2<redacted>", text))


@contextlib.contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Add ``fields`` to every line logged inside the block (and by tasks created in it)."""
    token = _context.set(_merge(_context.get(), fields))
    try:
        yield
    finally:
        _context.reset(token)


def portal_context(key: object) -> None:
    """Mark the rest of the current task as work for one portal (a queue worker)."""
    network = getattr(key, "network", None)
    fields = {"network": str(network)} if network else {}
    fields["portal"] = str(key)
    _context.set(_merge(_context.get(), fields))


def current_context() -> dict[str, str]:
    return dict(_context.get())


def _merge(current: tuple[tuple[str, str], ...], fields: dict[str, str]) -> tuple[tuple[str, str], ...]:
    merged = dict(current)
    merged.update(fields)
    return tuple(merged.items())


def _one_line(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", " | ")


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [network=... portal=...]: message | traceback``, on one line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(bridge_context)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = _context_of(record)
        record.bridge_context = (
            " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]" if fields else ""
        )
        return mask_secrets(_one_line(super().format(record)))


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(_context_of(record))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return mask_secrets(json.dumps(data, ensure_ascii=False))


def _context_of(record: logging.LogRecord) -> dict[str, str]:
    fields = getattr(record, "bridge_fields", None)
    return fields if isinstance(fields, dict) else {}


class ContextFilter(logging.Filter):
    """Copies the task's log context onto the record when it is created."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.bridge_fields = current_context()
        return True


LEAKY_LIBRARIES = ("aiosqlite",)
"""Libraries that log query parameters (session data, message text) at DEBUG."""


def silence_leaky_libraries() -> None:
    """Keep libraries that would log secrets at WARNING, whatever the root level is."""
    for name in LEAKY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def setup_logging(config: LoggingConfig) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter() if config.format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level.upper())
    silence_leaky_libraries()
    for module, level in config.modules.items():
        logging.getLogger(module).setLevel(level.upper())
    # mautrix logs every request body at DEBUG, message text included: those loggers
    # stay at INFO or above unless the admin names them in logging.modules.
    for chatty in BODY_LOGGERS:
        if chatty not in config.modules:
            logging.getLogger(chatty).setLevel(max(root.level, logging.INFO))


BODY_LOGGERS = ("mau", "bridge.matrix.api")
"""Loggers whose DEBUG lines hold request bodies (message text): quiet by default."""
