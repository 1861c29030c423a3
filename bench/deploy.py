"""Files and database rows an admin would make: bridge configs, registrations, logins.

Shared by the benchmark and the scale-out test (two bridge processes, one homeserver).
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bridge.config import load_config
from bridge.core.connector import LoginRecord, LoginState
from bridge.core.ids import LoginID, NetworkID, UserID
from bridge.db import BridgeDatabase
from bridge.registration import load_registration, write_registration

SERVER_NAME = "localhost"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BridgeDeployment:
    """One bridge process's config directory: config.yaml, registration.yaml, its log."""

    workdir: Path
    homeserver_url: str
    networks: dict[str, dict[str, Any]]
    db_uri: str
    appservice_id: str = "hubbridge"
    bot_username: str = "hubbridge"
    ghost_prefix: str = "hub_"
    port: int = field(default_factory=free_port)
    registration_url: str | None = None
    """Where Synapse sends transactions; the bridge's own port unless a proxy sits between."""
    permissions: dict[str, str] = field(default_factory=dict)
    log_level: str = "INFO"
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra config sections (e.g. ``encryption``), merged over the ones written here."""

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yaml"

    @property
    def registration_path(self) -> Path:
        return self.workdir / "registration.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "bridge.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def bot_mxid(self) -> str:
        return f"@{self.bot_username}:{SERVER_NAME}"

    def ghost_mxid(self, network: str, remote_id: str) -> str:
        return f"@{self.ghost_prefix}{network}_{remote_id}:{SERVER_NAME}"

    def write(self) -> None:
        """Write config.yaml and registration.yaml (the registration keeps its tokens)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "homeserver": {"address": self.homeserver_url, "domain": SERVER_NAME},
            "appservice": {
                "address": self.registration_url or self.url,
                "hostname": "127.0.0.1",
                "port": self.port,
                "id": self.appservice_id,
                "bot_username": self.bot_username,
                "ghost_prefix": self.ghost_prefix,
                "registration": "registration.yaml",
            },
            "database": {"uri": self.db_uri},
            "bridge": {"permissions": self.permissions or {"*": "relay"}},
            "logging": {"level": self.log_level},
            "networks": self.networks,
        }
        for section, values in self.settings.items():
            config[section] = {**config.get(section, {}), **values}
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        write_registration(load_config(self.config_path))

    @property
    def hs_token(self) -> str:
        return load_registration(load_config(self.config_path)).hs_token

    async def seed_login(self, owner: str, network: str, login_id: str, token: str) -> None:
        """Store a loopback login for ``owner`` through the bridge's own stores.

        This is what the ``login`` command leaves behind; the bridge restores it at start.
        """
        db = BridgeDatabase(self.db_uri)
        await db.start()
        try:
            await db.users.ensure(UserID(owner), 0)
            await db.logins.put(
                LoginRecord(
                    network=NetworkID(network),
                    login_id=LoginID(login_id),
                    owner=UserID(owner),
                    remote_name=login_id,
                    state=LoginState.CONNECTED,
                    metadata={"token": token},
                )
            )
        finally:
            await db.stop()


@dataclass
class CeilingAppservice:
    """A bare appservice (no bridge behind it) that sends as its own ghosts: the ceiling."""

    workdir: Path
    localpart: str = "benchceiling"
    ghost_prefix: str = "benchceil_"
    as_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def registration_path(self) -> Path:
        return self.workdir / "ceiling-registration.yaml"

    def ghost_localpart(self, index: int) -> str:
        return f"{self.ghost_prefix}s{index}"

    def write(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        registration = {
            "id": "benchceiling",
            # Synapse never needs to push anything to it: it only sends.
            "url": None,
            "as_token": self.as_token,
            "hs_token": secrets.token_urlsafe(32),
            "sender_localpart": self.localpart,
            "rate_limited": False,
            "namespaces": {
                "users": [{"regex": f"@{self.ghost_prefix}.*:{SERVER_NAME}", "exclusive": True}],
                "aliases": [],
                "rooms": [],
            },
        }
        self.registration_path.write_text(yaml.safe_dump(registration), encoding="utf-8")
