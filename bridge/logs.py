"""Logging set-up: levels per module from the config, one line per event, no secrets."""

from __future__ import annotations

import logging
import re

from .config import LoggingConfig

# Anything that looks like a credential in a log line is masked before it is written.
_SECRET = re.compile(
    r"(?i)(access_token|as_token|hs_token|token|password|pickle_key|session)(\W{1,3})([^\s&\"',}]+)"
)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _SECRET.sub(r"\1\2<redacted>", super().format(record))


LEAKY_LIBRARIES = ("aiosqlite",)
"""Libraries that log query parameters (session data, message text) at DEBUG."""


def silence_leaky_libraries() -> None:
    """Keep libraries that would log secrets at WARNING, whatever the root level is."""
    for name in LEAKY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def setup_logging(config: LoggingConfig) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level.upper())
    silence_leaky_libraries()
    for module, level in config.modules.items():
        logging.getLogger(module).setLevel(level.upper())
    # mautrix logs request bodies at DEBUG; keep it quieter unless asked for.
    if "mau" not in config.modules:
        logging.getLogger("mau").setLevel(max(root.level, logging.INFO))
