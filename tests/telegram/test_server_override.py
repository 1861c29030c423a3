"""A configured Telegram server (test servers, compatible servers): its address and public
key reach the client, failures are explained, and sign-up happens only where allowed.

The fake Telegram here runs the real auth key exchange with its own RSA key pair, so a
login only completes when the bridge was configured with the matching public key.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bridge.config import ConfigError, load_dataclass
from bridge.core.connector import LoginComplete, LoginError, LoginPrompt
from bridge.core.ids import UserID
from bridge.networks.telegram.client import build_client
from bridge.networks.telegram.config import TelegramConfig
from bridge.networks.telegram.connector import TelegramConnector
from bridge.networks.telegram.session import BridgeSession
from tests.support.bridge_env import free_port
from tests.telegram.fake.handshake import ServerRsaKey
from tests.telegram.fake.handlers import FakeTelegram
from tests.telegram.fake.harness import TEST_API_HASH, TEST_API_ID, RecordingHost, client_factory

SERVER_DC = 4  # not Telethon's default (2), so the stored session shows the override was used
KEY_NAME = "'networks.telegram.server.public_key'"


@pytest.fixture(autouse=True)
def _fresh_known_keys(telethon_known_keys: dict) -> None:
    """Every test here starts with only Telethon's built-in server keys."""


@pytest.fixture(scope="session")
def server_key() -> ServerRsaKey:
    return ServerRsaKey.generate()


@pytest.fixture(scope="session")
def other_key() -> ServerRsaKey:
    return ServerRsaKey.generate()


@pytest_asyncio.fixture(loop_scope="session")
async def keyed_fake(server_key: ServerRsaKey) -> AsyncIterator[FakeTelegram]:
    """A fake Telegram that creates auth keys only through the key exchange."""
    fake = FakeTelegram(rsa_key=server_key)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def telegram_config(**server: Any) -> TelegramConfig:
    """Parsed and validated as the bridge does at start-up."""
    section: dict[str, Any] = {"api_id": TEST_API_ID, "api_hash": TEST_API_HASH}
    if server:
        section["server"] = server
    config = load_dataclass(TelegramConfig, section, "networks.telegram")
    config.validate()
    return config


def connector_for(config: TelegramConfig) -> TelegramConnector:
    """The connector with the production client factory (only Telethon's pause between
    connection attempts is shortened)."""
    connector = TelegramConnector(config, RecordingHost())
    connector.client_factory = functools.partial(build_client, retry_delay=0.05)
    return connector


def server_section(fake: FakeTelegram, key: ServerRsaKey | None, **extra: Any) -> dict[str, Any]:
    section: dict[str, Any] = {"dc_id": SERVER_DC, "address": "127.0.0.1", "port": fake.port}
    if key is not None:
        section["public_key"] = key.public_pem()
    return {**section, **extra}


async def enter_phone(connector: TelegramConnector, phone: str):
    process = connector.start_login(UserID("@admin:localhost"), "phone")
    await process.start()
    return process, await process.submit(phone)


# --- Config ------------------------------------------------------------------------------


def test_public_key_is_read_from_pem_text_or_a_file_in_either_pem_form(server_key, tmp_path: Path) -> None:
    base = {"dc_id": 2, "address": "127.0.0.1", "port": 443}
    key_file = tmp_path / "server.pem"
    key_file.write_text(server_key.public_pem(pkcs1=False), encoding="ascii")
    for value, source in [(server_key.public_pem(), "PEM text in the config"), (str(key_file), str(key_file))]:
        config = telegram_config(**base, public_key=value)
        assert config.server is not None and config.server.key is not None
        # The fingerprint the fake announces, computed by the fake's own code.
        assert config.server.key.fingerprint == server_key.fingerprint
        assert config.server.key.source == source
    assert telegram_config(**base).server.key is None  # no key: Telethon's own keys only
    assert telegram_config().server is None  # the default: production data centres


@pytest.mark.parametrize(("public_key", "problem"), [
    ("-----BEGIN RSA PUBLIC KEY-----\nbm90IGEga2V5\n-----END RSA PUBLIC KEY-----\n", "not an RSA public key"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not an RSA public key"),
    ("/nonexistent/telegram-server.pem", "can't read the key file"),
])
def test_a_malformed_or_missing_public_key_is_a_config_error_naming_the_key(public_key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        telegram_config(dc_id=2, address="127.0.0.1", port=443, public_key=public_key)
    assert KEY_NAME in str(info.value) and problem in str(info.value)


def test_a_key_of_the_wrong_size_is_a_config_error() -> None:
    import rsa

    small, _ = rsa.newkeys(512)
    with pytest.raises(ConfigError, match="512-bit key"):
        telegram_config(dc_id=2, address="127.0.0.1", port=443, public_key=small.save_pkcs1().decode())


def test_sign_up_exists_only_inside_a_server_section_and_never_for_production_addresses() -> None:
    with pytest.raises(ConfigError, match="unknown key 'networks.telegram.allow_sign_up'"):
        load_dataclass(TelegramConfig, {"allow_sign_up": True}, "networks.telegram")
    assert not telegram_config().sign_up_allowed
    assert not telegram_config(dc_id=2, address="127.0.0.1", port=443).sign_up_allowed
    assert telegram_config(dc_id=2, address="127.0.0.1", port=443, allow_sign_up=True).sign_up_allowed
    with pytest.raises(ConfigError, match="production servers"):
        telegram_config(dc_id=2, address="149.154.167.51", port=443, allow_sign_up=True)
    for bad, message in [({"dc_id": 0}, "dc_id"), ({"address": ""}, "address"), ({"port": 70000}, "port")]:
        with pytest.raises(ConfigError, match=message):
            telegram_config(**{"dc_id": 2, "address": "127.0.0.1", "port": 443, **bad})


async def test_the_client_refuses_to_sign_up_unless_a_configured_server_allows_it() -> None:
    for config in (telegram_config(), telegram_config(dc_id=2, address="127.0.0.1", port=443)):
        client = build_client(config, BridgeSession())
        assert not client.sign_up_allowed
        with pytest.raises(PermissionError):
            await client.create_account("+99966", "hash", "Ada", "")


# --- The override reaches the client -----------------------------------------------------


async def test_login_uses_the_configured_address_and_completes_the_key_exchange_with_its_key(
    keyed_fake: FakeTelegram, server_key: ServerRsaKey
) -> None:
    fake = keyed_fake
    alice = fake.add_account("Alice", phone="+4915300000001")
    connector = connector_for(telegram_config(**server_section(fake, server_key)))
    process, step = await enter_phone(connector, alice.phone)
    assert isinstance(step, LoginPrompt) and "login code" in step.message
    done = await process.submit(fake.login_code(alice.phone))
    assert isinstance(done, LoginComplete) and done.record.login_id == str(alice.id)

    # The session was made on the configured server, with an auth key from the exchange.
    assert fake.server.key_exchanges == [server_key.fingerprint]
    auth = done.record.metadata["auth"]
    assert (auth["dc_id"], auth["address"], auth["port"]) == (SERVER_DC, "127.0.0.1", fake.port)
    exchanged = [r for r in fake.server.auth_keys.values() if r.user_id == alice.id]
    assert len(exchanged) == 1
    assert BridgeSession(done.record.metadata).auth_key.key == exchanged[0].key

    # The restored login reconnects there with that key: no second exchange.
    login = connector.load_login(done.record)
    await login.connect()
    try:
        await connector.host.wait_for(lambda: login.record.state.value == "connected")
        await fake.send(fake.add_account("Bob"), alice, "over the configured server")
        await connector.host.wait_for(lambda: any(
            getattr(getattr(e, "content", None), "text", None) is not None
            and e.content.text.text == "over the configured server" for e in connector.host.events))
    finally:
        await login.disconnect()
    assert fake.server.key_exchanges == [server_key.fingerprint]


async def test_a_wrong_public_key_fails_the_login_with_a_clear_error_in_the_reply_and_the_log(
    keyed_fake: FakeTelegram, other_key: ServerRsaKey, caplog: pytest.LogCaptureFixture
) -> None:
    fake = keyed_fake
    alice = fake.add_account("Alice", phone="+4915300000002")
    config = telegram_config(**server_section(fake, other_key))
    caplog.set_level(logging.WARNING, logger="bridge.networks.telegram")
    with pytest.raises(LoginError) as info:
        await enter_phone(connector_for(config), alice.phone)
    message = str(info.value)
    assert f"127.0.0.1:{fake.port}" in message and "does not use the configured public key" in message
    assert config.server.key.fingerprint_hex in message and KEY_NAME in message
    logged = [r for r in caplog.records if r.name == "bridge.networks.telegram.login"]
    assert any("does not use the configured public key" in r.getMessage() and r.levelno == logging.WARNING
               for r in logged)
    # The client never sent step 2: it had no key for the fingerprint the server announced.
    assert fake.server.key_exchanges == [] and "SendCodeRequest" not in fake.requests


async def test_without_a_configured_key_the_error_says_which_setting_is_missing(keyed_fake: FakeTelegram) -> None:
    fake = keyed_fake
    with pytest.raises(LoginError, match="uses a public key the bridge does not know; set 'networks.telegram.server"):
        await enter_phone(connector_for(telegram_config(**server_section(fake, None))), "+4915300000003")


async def test_an_unreachable_server_fails_the_login_with_a_clear_error_and_a_start_up_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens there
    config = telegram_config(dc_id=2, address="127.0.0.1", port=port)
    connector = connector_for(config)
    caplog.set_level(logging.INFO, logger="bridge.networks.telegram")
    await connector.start()
    startup = [r.getMessage() for r in caplog.records if r.name == "bridge.networks.telegram"]
    assert any(f"using the Telegram server at 127.0.0.1:{port} (data centre 2)" in m for m in startup)
    assert any(f"can't reach the Telegram server at 127.0.0.1:{port}" in m for m in startup)
    with pytest.raises(LoginError, match=rf"Can't reach the Telegram server at 127\.0\.0\.1:{port}"):
        await enter_phone(connector, "+4915300000004")
    assert any(f"can't reach the Telegram server at 127.0.0.1:{port}" in r.getMessage()
               for r in caplog.records if r.name == "bridge.networks.telegram.login")


async def test_start_up_log_names_production_when_no_server_is_configured(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.networks.telegram")
    await TelegramConnector(telegram_config(), RecordingHost()).start()
    assert "Telegram: using Telegram's production data centres" in caplog.messages


# --- Sign-up -----------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["error", "object"])
async def test_a_new_number_signs_up_with_first_and_last_name_where_allowed(
    keyed_fake: FakeTelegram, server_key: ServerRsaKey, answer: str
) -> None:
    fake = keyed_fake
    fake.open_registration, fake.sign_up_answer = True, answer
    phone = "+9996621234"
    connector = connector_for(telegram_config(**server_section(fake, server_key, allow_sign_up=True)))
    process, _ = await enter_phone(connector, phone)
    step = await process.submit(fake.login_code(phone))
    assert isinstance(step, LoginPrompt) and "first name" in step.message and not step.secret
    with pytest.raises(LoginError, match="first name of 1 to 64"):
        await process.submit("x" * 65)
    step = await process.submit("Ada")
    assert isinstance(step, LoginPrompt) and "last name" in step.message
    done = await process.submit("Lovelace")
    assert isinstance(done, LoginComplete)

    [new_id] = fake.signed_up
    account = fake.accounts[new_id]
    assert (account.first_name, account.last_name) == ("Ada", "Lovelace")
    assert done.record.login_id == str(new_id) and done.record.remote_name == "Ada Lovelace"
    assert "9996621234" not in repr(done.record.metadata)
    login = connector.load_login(done.record)
    await login.connect()
    try:
        await connector.host.wait_for(lambda: login.record.state.value == "connected")
    finally:
        await login.disconnect()


async def test_a_last_name_is_optional(keyed_fake: FakeTelegram, server_key: ServerRsaKey) -> None:
    fake = keyed_fake
    fake.open_registration = True
    connector = connector_for(telegram_config(**server_section(fake, server_key, allow_sign_up=True)))
    process, _ = await enter_phone(connector, "+9996625678")
    await process.submit(fake.login_code("+9996625678"))
    await process.submit("Grace")
    done = await process.submit("-")
    assert isinstance(done, LoginComplete) and done.record.remote_name == "Grace"
    assert fake.accounts[fake.signed_up[0]].last_name is None


async def test_sign_up_is_refused_on_a_configured_server_that_does_not_allow_it(
    keyed_fake: FakeTelegram, server_key: ServerRsaKey
) -> None:
    fake = keyed_fake
    fake.open_registration = True
    connector = connector_for(telegram_config(**server_section(fake, server_key)))
    process, _ = await enter_phone(connector, "+9996620001")
    with pytest.raises(LoginError, match="signing up through the bridge is off: 'networks.telegram.server.allow_sign_up'"):
        await process.submit(fake.login_code("+9996620001"))
    assert "SignUpRequest" not in fake.requests and fake.signed_up == []
    # The flow starts over at the phone number.
    with pytest.raises(LoginError, match="phone number"):
        await process.submit("not a number")


async def test_sign_up_is_never_tried_without_a_configured_server(fake: FakeTelegram, host: RecordingHost) -> None:
    """The production path: whatever the server offers, the bridge does not sign up."""
    fake.open_registration = True
    connector = TelegramConnector(telegram_config(), host)
    connector.client_factory = client_factory(fake)
    process, _ = await enter_phone(connector, "+4915300000009")
    with pytest.raises(LoginError) as info:
        await process.submit(fake.login_code("+4915300000009"))
    assert "There is no Telegram account with that phone number" in str(info.value)
    assert "allow_sign_up" not in str(info.value)  # nothing an admin could switch on
    assert "SignUpRequest" not in fake.requests and fake.signed_up == []
