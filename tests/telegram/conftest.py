"""Fixtures for the Telegram connector: a fake Telegram on 127.0.0.1 and the real connector."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from bridge.core.connector import LoginComplete
from bridge.core.ids import UserID
from bridge.networks.telegram.connector import TelegramConnector, TelegramLogin
from tests.telegram.fake.handlers import FakeTelegram
from tests.telegram.fake.harness import RecordingHost, client_factory, test_config
from tests.telegram.fake.world import Account


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
