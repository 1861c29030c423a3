"""Wiring the fake Telegram to the real connector: a client factory and a recording host."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from telethon.crypto import AuthKey

from bridge.core.connector import LoginComplete, LoginError, LoginPrompt, LoginState, NetworkLogin
from bridge.core.events import RemoteEvent, UserInfo
from bridge.networks.telegram.client import BridgeTelegramClient, build_client
from bridge.networks.telegram.config import TelegramConfig
from bridge.networks.telegram.session import BridgeSession

from .handlers import FakeTelegram
from .world import DC_ID

TEST_API_ID = 611335
TEST_API_HASH = "d524b414d21f4d37f08684c1df41ac9c"


def test_config(**kw: Any) -> TelegramConfig:
    config = TelegramConfig(api_id=TEST_API_ID, api_hash=TEST_API_HASH, **kw)
    config.validate()
    return config


def client_factory(fake: FakeTelegram):
    """Build the production client, pointed at the fake. A new session gets an auth key
    the fake knows (the part of MTProto the fake skips)."""

    def factory(config: TelegramConfig, session: BridgeSession) -> BridgeTelegramClient:
        if session.auth_key is None or not session.auth_key.key:
            record = fake.server.new_auth_key()
            session.auth_key = AuthKey(record.key)
        session.set_dc(DC_ID, "127.0.0.1", fake.port)
        client = build_client(config, session)
        client._connection_retries = 3
        return client

    return factory


@dataclass
class RecordingHost:
    """The core's side of the connector interface, recording what the connector does.

    ``fail_next`` makes handling of the next events fail, as a core error would.
    """

    events: list[RemoteEvent] = field(default_factory=list)
    states: list[tuple[LoginState, str | None]] = field(default_factory=list)
    saved: list[dict[str, Any]] = field(default_factory=list)
    ghosts: list[UserInfo] = field(default_factory=list)
    progress: list[Any] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def queue_remote_event(self, login: NetworkLogin, event: RemoteEvent) -> asyncio.Future[None]:
        self.events.append(event)
        self._notify()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def set_login_state(self, login: NetworkLogin, state: LoginState, error: str | None = None) -> None:
        login.record.state, login.record.error = state, error
        self.states.append((state, error))
        self._notify()

    async def save_login(self, login: NetworkLogin) -> None:
        self.saved.append(dict(login.record.metadata))
        self._notify()

    async def update_ghost(self, network: Any, info: UserInfo) -> None:
        self.ghosts.append(info)
        self._notify()

    async def login_progress(self, owner: Any, step: LoginPrompt | LoginComplete | LoginError) -> None:
        self.progress.append(step)
        self._notify()

    async def wait_for(self, check, timeout: float = 10.0):
        async with asyncio.timeout(timeout):
            while True:
                changed = self.changed
                result = check()
                if result:
                    return result
                await changed.wait()
