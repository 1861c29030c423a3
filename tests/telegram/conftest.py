"""Fixtures for the Telegram connector: a fake Telegram on 127.0.0.1 and the real connector."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from telethon.crypto import rsa as telethon_rsa

from bridge.core.connector import LoginComplete
from bridge.core.ids import UserID
from bridge.networks.telegram.connector import TelegramConnector, TelegramLogin
from tests.telegram.fake.handlers import FakeTelegram
from tests.telegram.fake.harness import RecordingHost, client_factory, test_config
from tests.telegram.fake.world import Account


@pytest.fixture
def telethon_known_keys() -> Iterator[dict]:
    """Telethon keeps the server keys it knows process-wide (``add_key``): a test that
    configures a server key gets Telethon's built-in keys back afterwards, so a later
    test's "wrong key" is not known from an earlier one."""
    saved = dict(telethon_rsa._server_keys)
    try:
        yield telethon_rsa._server_keys
    finally:
        telethon_rsa._server_keys.clear()
        telethon_rsa._server_keys.update(saved)


@pytest_asyncio.fixture(loop_scope="session")
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def host() -> RecordingHost:
    return RecordingHost()


@pytest_asyncio.fixture(loop_scope="session")
async def connector(fake: FakeTelegram, host: RecordingHost) -> TelegramConnector:
    connector = TelegramConnector(test_config(), host)
    connector.client_factory = client_factory(fake)
    return connector


async def phone_login(connector: TelegramConnector, fake: FakeTelegram, account: Account) -> LoginComplete:
    """Log in through the phone flow exactly as a user would answer the bot."""
    process = connector.start_login(UserID("@alice:localhost"), "phone")
    await process.start()
    await process.submit(account.phone or "")
    step = await process.submit(fake.login_code(account.phone or ""))
    if account.password:
        step = await process.submit(account.password)
    assert isinstance(step, LoginComplete), step
    return step


async def logged_in(connector: TelegramConnector, fake: FakeTelegram, account: Account) -> TelegramLogin:
    """A connected login of ``account`` (the state a restored login starts in)."""
    complete = await phone_login(connector, fake, account)
    login = connector.load_login(complete.record)
    assert isinstance(login, TelegramLogin)
    await login.connect()
    host = connector.host
    await host.wait_for(lambda: login.record.state.value == "connected")
    return login
