"""A bridge under test: config and registration written as an admin would, run in-process."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bridge.config import load_config
from bridge.core.bridge import Bridge
from bridge.registration import write_registration


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BridgeUnderTest:
    """One bridge's files; ``start``/``stop`` run it inside the test's event loop."""

    workdir: Path
    homeserver_url: str
    networks: dict[str, dict[str, Any]]
    db_uri: str
    appservice_id: str = "hubbridge"
    bot_username: str = "hubbridge"
    ghost_prefix: str = "hub_"
    port: int = field(default_factory=free_port)
    permissions: dict[str, str] = field(default_factory=lambda: {"@admin:localhost": "admin"})
    double_puppet: bool = False
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra config sections (e.g. ``encryption``), merged over the defaults below."""
    bridge: Bridge | None = None
    registration_files: list[Path] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yaml"

    @property
    def registration_path(self) -> Path:
        return self.workdir / "registration.yaml"

    @property
    def bridge_db_uri(self) -> str:
        return self.db_uri

    @property
    def bot_mxid(self) -> str:
        return f"@{self.bot_username}:localhost"

    def write_files(self) -> list[Path]:
        """Write config.yaml and the registration(s), exactly as the README tells admins."""
        self.write_config()
        self.registration_files = write_registration(load_config(self.config_path))
        return self.registration_files

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "homeserver": {"address": self.homeserver_url, "domain": "localhost"},
            "appservice": {
                "address": f"http://127.0.0.1:{self.port}",
                "hostname": "127.0.0.1",
                "port": self.port,
                "id": self.appservice_id,
                "bot_username": self.bot_username,
                "ghost_prefix": self.ghost_prefix,
                "registration": "registration.yaml",
            },
            "database": {"uri": self.db_uri},
            "bridge": {
                "permissions": self.permissions,
                "max_media_size_mb": 5,
                "double_puppet": self.double_puppet,
            },
            "logging": {"level": "DEBUG"},
            "networks": self.networks,
        }
        for section, values in self.settings.items():
            config[section] = {**config.get(section, {}), **values}
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")

    def allow(self, user_id: str, level: str = "user") -> None:
        """Give a user a permission level, in the running bridge and in its config file."""
        self.permissions[user_id] = level
        self.write_config()
        if self.bridge is not None:
            self.bridge.config.bridge.permissions[user_id] = level

    async def start(self) -> Bridge:
        config = load_config(self.config_path)
        config.bridge.permissions.update(self.permissions)
        self.bridge = Bridge(config)
        await self.bridge.start()
        return self.bridge

    async def stop(self) -> None:
        if self.bridge is not None:
            await self.bridge.stop(drain_timeout=10)
            self.bridge = None

    async def restart(self) -> Bridge:
        await self.stop()
        return await self.start()
