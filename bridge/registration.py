"""The appservice registration file: written from the config, read back for the tokens.

The tokens live only in the registration file (the homeserver needs the same file), so
the config never has to be rewritten and there is one place to rotate them.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import Config, ConfigError
from .matrix.ids import GhostIDs


@dataclass(frozen=True)
class Registration:
    as_token: str
    hs_token: str
    sender_localpart: str


def registration_path(config: Config) -> Path:
    path = Path(config.appservice.registration)
    if not path.is_absolute() and config.path is not None:
        path = config.path.parent / path
    return path


def build_registration(config: Config, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """The registration for ``config``; tokens are kept from ``existing`` when present."""
    existing = existing or {}
    ghosts = GhostIDs(config.appservice.ghost_prefix, config.homeserver.domain)
    domain = re.escape(config.homeserver.domain)
    bot = re.escape(config.appservice.bot_username)
    users = [{"regex": f"^@{bot}:{domain}$", "exclusive": True}]
    users += [
        {"regex": ghosts.namespace_regex(name), "exclusive": True}
        for name in config.enabled_networks
    ]
    return {
        "id": config.appservice.id,
        "url": config.appservice.address,
        "as_token": existing.get("as_token") or secrets.token_urlsafe(32),
        "hs_token": existing.get("hs_token") or secrets.token_urlsafe(32),
        "sender_localpart": config.appservice.bot_username,
        "rate_limited": False,
        "namespaces": {"users": users, "aliases": [], "rooms": []},
        # Typing notifications and read receipts arrive as ephemeral events.
        "receive_ephemeral": True,
        "de.sorunome.msc2409.push_ephemeral": True,
    }


def write_registration(config: Config, path: Path | None = None) -> Path:
    path = path or registration_path(config)
    existing = None
    if path.exists():
        existing = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    data = build_registration(config, existing)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return path


def load_registration(config: Config) -> Registration:
    path = registration_path(config)
    if not path.exists():
        raise ConfigError(
            f"the registration file {path} does not exist: run "
            "'python -m bridge generate-registration' and add it to the homeserver"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
    for key in ("as_token", "hs_token", "sender_localpart"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ConfigError(f"{path}: '{key}' is missing; generate the registration again")
    if data["sender_localpart"] != config.appservice.bot_username:
        raise ConfigError(
            f"{path}: sender_localpart is {data['sender_localpart']!r} but "
            f"'appservice.bot_username' is {config.appservice.bot_username!r}: "
            "generate the registration again"
        )
    return Registration(data["as_token"], data["hs_token"], data["sender_localpart"])
