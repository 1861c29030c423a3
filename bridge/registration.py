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
    double_puppet_token: str | None = None
    """The as_token of the double-puppeting registration, when it is enabled."""


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
    registration = {
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
    if config.encryption.allow:
        # Appservice-mode encryption: to-device events (MSC2409, sent to appservices that
        # receive ephemeral events), device lists and one-time key counts (MSC3202) come in
        # transactions, and the bridge creates its users' devices itself (MSC4190).
        registration["org.matrix.msc3202"] = True
        registration["io.element.msc4190"] = True
    return registration


def double_puppet_path(main: Path) -> Path:
    return main.with_name(main.stem + "-doublepuppet" + main.suffix)


def build_double_puppet_registration(
    config: Config, existing: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A second registration that only lets the bridge act as local users (double
    puppeting). Its ``url`` is null, so the homeserver pushes nothing through it: the
    namespace covers every local user, and the bridge must not receive all their rooms."""
    existing = existing or {}
    domain = re.escape(config.homeserver.domain)
    return {
        "id": f"{config.appservice.id}_doublepuppet",
        "url": None,
        "as_token": existing.get("as_token") or secrets.token_urlsafe(32),
        "hs_token": existing.get("hs_token") or secrets.token_urlsafe(32),
        "sender_localpart": existing.get("sender_localpart") or secrets.token_hex(8),
        "rate_limited": False,
        "namespaces": {"users": [{"regex": f"^@[^:]+:{domain}$", "exclusive": False}]},
    }


def _write(path: Path, build, config: Config) -> None:
    existing = yaml.safe_load(path.read_text(encoding="utf-8")) or {} if path.exists() else None
    path.write_text(yaml.safe_dump(build(config, existing), sort_keys=False), encoding="utf-8")
    path.chmod(0o600)


def write_registration(config: Config, path: Path | None = None) -> list[Path]:
    """Write the registration (and the double-puppeting one, when enabled); return the files."""
    path = path or registration_path(config)
    _write(path, build_registration, config)
    written = [path]
    if config.bridge.double_puppet:
        _write(double_puppet_path(path), build_double_puppet_registration, config)
        written.append(double_puppet_path(path))
    return written


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
    if config.encryption.allow and not (
        data.get("org.matrix.msc3202") is True and data.get("io.element.msc4190") is True
    ):
        raise ConfigError(
            f"{path}: 'encryption.allow' is on but the registration lacks the settings "
            "appservice-mode encryption needs: generate the registration again and restart "
            "the homeserver (see docs/encryption.md)"
        )
    puppet_token = None
    if config.bridge.double_puppet:
        puppet = double_puppet_path(path)
        if not puppet.exists():
            raise ConfigError(
                f"'bridge.double_puppet' is on but {puppet} does not exist: run "
                "'python -m bridge generate-registration' and add it to the homeserver too"
            )
        puppet_token = (yaml.safe_load(puppet.read_text(encoding="utf-8")) or {}).get("as_token")
        if not isinstance(puppet_token, str) or not puppet_token:
            raise ConfigError(f"{puppet}: 'as_token' is missing; generate the registration again")
    return Registration(data["as_token"], data["hs_token"], data["sender_localpart"], puppet_token)
