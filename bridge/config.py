"""Typed configuration, loaded from YAML with errors that name the key or line.

Each section is a dataclass; the loader checks every key against the dataclass fields, so a
typo is an error instead of a silently ignored setting. A connector's section under
``networks:`` is parsed by that connector's own config dataclass.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(Exception):
    """A configuration problem, phrased for the admin: it names the key or line."""


PermissionLevel = Literal["relay", "user", "admin"]
PERMISSION_ORDER: dict[str, int] = {"none": 0, "relay": 1, "user": 2, "admin": 3}


@dataclass
class HomeserverConfig:
    address: str = "http://127.0.0.1:8008"
    """How the bridge reaches the homeserver's client-server API."""
    domain: str = "example.com"
    """The homeserver's server name (the part after the colon in user ids)."""


@dataclass
class AppserviceConfig:
    address: str = "http://127.0.0.1:29400"
    """How the homeserver reaches the bridge."""
    hostname: str = "127.0.0.1"
    port: int = 29400
    id: str = "hubbridge"
    bot_username: str = "hubbridge"
    bot_displayname: str = "Hub bridge bot"
    ghost_prefix: str = "hub_"
    """Ghost user ids are ``@{ghost_prefix}{network}_{opaque id}:{domain}``."""
    registration: str = "registration.yaml"
    """The registration file written by ``generate-registration``; tokens are read from it."""


@dataclass
class DatabaseConfig:
    uri: str = "sqlite:hub-bridge.db"
    """``sqlite:PATH`` (embedded) or ``postgres://user:pass@host/db`` (production)."""
    max_connections: int = 10


@dataclass
class RelayConfig:
    """Hub rooms: how messages are relayed between linked chats."""

    template: str = "{name}: {message}"
    """How a relayed message reads; ``{name}`` is the sender's display name and network."""
    names: Literal["display", "pseudonym"] = "display"
    """``pseudonym`` shows a stable per-room alias instead of any display name."""
    notices: bool = True
    """Tell each chat, and each new person in it, that the chat is bridged."""
    privacy_policy_url: str = ""
    """Linked from the notices; your server's privacy policy."""


@dataclass
class BridgeConfig:
    command_prefix: str = "!bridge"
    permissions: dict[str, str] = field(default_factory=lambda: {"*": "relay"})
    """Matrix user id, server name or ``*`` -> ``relay``, ``user`` or ``admin``."""
    max_media_size_mb: int = 50
    bridge_notices: bool = True
    """Post a notice in the room when a message could not be delivered."""
    message_retention_days: int = 90
    """Message id mappings older than this are deleted; bodies are never stored."""
    backfill_limit: int = 20
    """How many recent messages to bring in when a portal is created (where the network can)."""
    relay: RelayConfig = field(default_factory=RelayConfig)
    double_puppet: bool = False
    """Show what users send from their other apps as sent by their own Matrix account.
    Needs the second registration that ``generate-registration`` then writes."""


PICKLE_KEY_EXAMPLE = "CHANGE ME to a long random secret"


@dataclass
class EncryptionConfig:
    allow: bool = False
    """Take part in encrypted rooms (end-to-bridge encryption with Olm/Megolm)."""
    default: bool = False
    """Create new portal rooms encrypted."""
    require: bool = False
    """Refuse to bridge rooms that are not encrypted (new portals are always encrypted)."""
    pickle_key: str = field(default=PICKLE_KEY_EXAMPLE, repr=False)
    """Encrypts the bridge's Olm/Megolm keys in the database; never logged."""
    key_wait_seconds: float = 5.0
    """How long an undecryptable message waits for its key before the bridge asks for it."""
    key_give_up_seconds: float = 60.0
    """After this long without its key, the sender is told the message was not bridged."""
    bot_recovery_key: bool = False
    """Put the bot's cross-signing keys in its secret storage and print the recovery key
    once on standard output (never logged)."""


@dataclass
class LoggingConfig:
    level: str = "INFO"
    modules: dict[str, str] = field(default_factory=dict)
    """Per-module levels, e.g. ``bridge.networks.loopback: DEBUG``."""
    format: Literal["text", "json"] = "text"
    """One line per event either way; ``json`` is for log collectors."""


@dataclass
class MetricsConfig:
    enabled: bool = False
    listen: str = "127.0.0.1:9100"
    """``host:port`` of the Prometheus endpoint (``GET /metrics``)."""
    token: str = ""
    """Bearer token scrapers must send; required unless ``listen`` is a loopback address."""


@dataclass
class ProvisioningConfig:
    enabled: bool = False
    listen: str = "127.0.0.1:29401"
    """``host:port`` of the provisioning API."""
    shared_secret: str = ""
    """Bearer token of the API: at least 32 random characters (``openssl rand -hex 32``)."""


@dataclass
class Config:
    homeserver: HomeserverConfig = field(default_factory=HomeserverConfig)
    appservice: AppserviceConfig = field(default_factory=AppserviceConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    encryption: EncryptionConfig = field(default_factory=EncryptionConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    provisioning: ProvisioningConfig = field(default_factory=ProvisioningConfig)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Raw network sections; each enabled connector parses its own."""
    path: Path | None = field(default=None, metadata={"internal": True})

    @property
    def enabled_networks(self) -> list[str]:
        return [name for name, section in self.networks.items() if section.get("enabled", True)]

    def permission_of(self, user_id: str) -> str:
        """The permission level of a Matrix user: exact id, then server name, then ``*``."""
        perms = self.bridge.permissions
        if user_id in perms:
            return perms[user_id]
        server = user_id.split(":", 1)[1] if ":" in user_id else ""
        if server in perms:
            return perms[server]
        return perms.get("*", "none")


def load_dataclass(cls: type, data: Any, path: str) -> Any:
    """Build dataclass ``cls`` from a mapping, naming the dotted key of any problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'the config'} must be a mapping, not {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    values: dict[str, Any] = {}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown key '{key_path}' (known keys here: {known})")
        values[key] = _convert(hints[key], value, key_path)
    return cls(**values)


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else f"{type(value).__name__} {value!r}"


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return load_dataclass(hint, value, path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, path)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"'{path}' must be one of {', '.join(map(repr, args))}, not {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{path}' must be a mapping, not {_kind(value)}")
        key_type, value_type = args
        return {
            _convert(key_type, k, f"{path}.{k}"): _convert(value_type, v, f"{path}.{k}")
            for k, v in value.items()
        }
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"'{path}' must be a list, not {_kind(value)}")
        return [_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{path}' must be true or false, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{path}' must be a whole number, not {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{path}' must be a number, not {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"'{path}' must be text, not {_kind(value)}")
        return str(value)
    raise ConfigError(f"'{path}': unsupported type {hint}")  # a bug in a config class


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from e


PLACEHOLDERS: dict[str, set[str]] = {
    "homeserver.domain": {"example.com", "your.server.name"},
    "homeserver.address": {"https://matrix.example.com"},
}
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def validate(config: Config) -> None:
    """Checks that need more than one key, and placeholder values left from the example."""
    for key, bad in PLACEHOLDERS.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value in bad:
            raise ConfigError(f"'{key}' still has the example value {value!r}: set it to yours")
    for who, level in config.bridge.permissions.items():
        if level not in PERMISSION_ORDER or level == "none":
            raise ConfigError(
                f"'bridge.permissions.{who}' must be relay, user or admin, not {level!r}"
            )
    if not re.fullmatch(r"[a-z0-9._=-]+", config.appservice.bot_username):
        raise ConfigError("'appservice.bot_username' may hold only a-z, 0-9 and ._=-")
    if not re.fullmatch(r"[a-z0-9._=-]*", config.appservice.ghost_prefix):
        raise ConfigError("'appservice.ghost_prefix' may hold only a-z, 0-9 and ._=-")
    for name, level in [("logging.level", config.logging.level)] + [
        (f"logging.modules.{m}", lvl) for m, lvl in config.logging.modules.items()
    ]:
        if level.upper() not in _LEVELS:
            raise ConfigError(f"'{name}' must be one of {', '.join(sorted(_LEVELS))}")
    for name, section in config.networks.items():
        if not isinstance(section, dict):
            raise ConfigError(f"'networks.{name}' must be a mapping")
    if "{message}" not in config.bridge.relay.template:
        raise ConfigError("'bridge.relay.template' must contain {message}")
    try:
        config.bridge.relay.template.format(name="", message="")
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(
            f"'bridge.relay.template' may use only {{name}} and {{message}} ({e})"
        ) from None
    if not config.database.uri.startswith(("sqlite:", "postgres://", "postgresql://")):
        raise ConfigError("'database.uri' must start with sqlite: or postgres://")
    _validate_encryption(config.encryption)
    _validate_http_services(config)


def _validate_encryption(enc: EncryptionConfig) -> None:
    if not enc.allow:
        for key in ("default", "require"):
            if getattr(enc, key):
                raise ConfigError(f"'encryption.{key}' needs 'encryption.allow: true'")
        return
    # The key's value never appears in a message: it protects every stored Olm/Megolm key.
    if enc.pickle_key.strip() in ("", PICKLE_KEY_EXAMPLE):
        raise ConfigError(
            "'encryption.pickle_key' still has the example value: set it to a long random "
            "secret (e.g. the output of 'openssl rand -base64 32') and keep it"
        )
    if len(enc.pickle_key) < 16:
        raise ConfigError("'encryption.pickle_key' is too short: use at least 16 characters")
    if enc.key_wait_seconds <= 0 or enc.key_give_up_seconds < enc.key_wait_seconds:
        raise ConfigError(
            "'encryption.key_wait_seconds' must be positive and at most "
            "'encryption.key_give_up_seconds'"
        )


MIN_SECRET_LENGTH = 32
EXAMPLE_SECRETS = {"generate", "changeme", "change me", "secret", "example"}


def parse_listen(value: str, key: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as a host and a port number."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"'{key}' must be host:port, e.g. 127.0.0.1:9100, not {value!r}")
    return host, int(port)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate_http_services(config: Config) -> None:
    """Everything HTTP besides the appservice needs its own secret, or stays on localhost."""
    if config.metrics.enabled:
        host, _ = parse_listen(config.metrics.listen, "metrics.listen")
        if not config.metrics.token and not is_loopback_host(host):
            raise ConfigError(
                "'metrics.token' must be set when 'metrics.listen' is not a loopback "
                "address: anyone who can reach the port could read the bridge's metrics"
            )
    if config.provisioning.enabled:
        parse_listen(config.provisioning.listen, "provisioning.listen")
        secret = config.provisioning.shared_secret
        if secret.strip().lower() in EXAMPLE_SECRETS or len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"'provisioning.shared_secret' must be at least {MIN_SECRET_LENGTH} random "
                "characters (e.g. the output of 'openssl rand -hex 32')"
            )


def load_config(path: Path | str) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"can't read the config file {path}: {e.strerror}") from e
    data = parse_yaml(text, str(path))
    config = load_dataclass(Config, data, "")
    config.path = path
    validate(config)
    return config
