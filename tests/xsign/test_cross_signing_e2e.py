"""Cross-signed bridge identities, checked by a strict client against a real Synapse.

The client is matrix-nio (vodozemac) made strict by tests/support/strict_trust.py: nio
itself has no cross-signing, so the test side checks every device, from the server's raw
keys, by the Rust crypto's "cross-signed by its owner" rule. It sends room keys only to
devices that pass, and refuses messages whose session came from a device that does not.
The "xsign" bridge (tests/xsign/conftest.py) allows encryption and makes new portals encrypted.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
import yaml
from nacl.signing import SigningKey
from signedjson.sign import sign_json
from unpaddedbase64 import encode_base64

from bridge.devtools.synapse import LocalSynapse
from bridge.matrix.crypto_devices import BridgeCryptoStore
from bridge.networks.loopback.client import LoopbackClient
from tests.conftest import unique
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import LoopbackAccount, body_of, loopback_user, open_management_room
from tests.support.matrix_client import TestClient, make_client
from tests.support.strict_trust import StrictRejection, StrictTrust
from tests.test_encryption_e2e import loopback_gets

pytestmark = pytest.mark.synapse


@pytest_asyncio.fixture(loop_scope="session")
async def alice(synapse: LocalSynapse, tmp_path: Path) -> AsyncIterator[TestClient]:
    client = await make_client(synapse, unique("alice"), tmp_path / "alice", encryption=True)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def strict(alice: TestClient, synapse: LocalSynapse) -> StrictTrust:
    return StrictTrust(alice, synapse.url).install()


async def trusted_bot_reply(strict: StrictTrust, room: str, env: BridgeUnderTest, fragment: str) -> str:
    event = await strict.client.wait_for_event(
        room, lambda e: e.source.get("sender") == env.bot_mxid and fragment in body_of(e)
    )
    await strict.require_trusted(event)
    return body_of(event)


async def strict_portal(
    strict: StrictTrust, env: BridgeUnderTest, loopback: LoopbackClient, name: str
) -> tuple[str, str, LoopbackAccount, str]:
    """Log in over an encrypted DM and get a bridged chat, all through the strict client.

    Returns (chat, portal room, Bob on loopback, the DM with the bot).
    """
    alice = strict.client
    me = await loopback_user(loopback, unique("me"), "Me")
    bob = await loopback_user(loopback, unique("bob"), "Bob")
    env.allow(alice.user_id, "admin")
    dm = await alice.create_room(invite=[env.bot_mxid], is_direct=True, encrypted=True)
    await trusted_bot_reply(strict, dm, env, "Send 'help'")
    await strict.send_text(dm, "login loopback")
    await trusted_bot_reply(strict, dm, env, "Send the token")
    await strict.send_text(dm, me.token)
    await trusted_bot_reply(strict, dm, env, "Logged in to Loopback")
    chat = (await loopback.admin_create_chat(name, [me.user_id, bob.user_id]))["id"]
    await bob.api.send_message(chat, f"first words in {name}")
    room = await alice.wait_for_invite()
    await alice.join(room)
    await strict.wait_for_trusted(room, f"first words in {name}")
    return chat, room, bob, dm


async def settle(env: BridgeUnderTest, client: TestClient) -> None:
    """Wait until the homeserver delivers to the restarted bridge again.

    A transaction that fails while the bridge restarts makes Synapse mark it down and
    retry later, and until then Synapse drops to-device messages (room keys) for it. An
    invite from an unencrypted room is delivered by that retry, so once the bot answers
    it, Synapse delivers everything again. (The bridge pings the homeserver at start,
    which ends a recovery already under way; this covers a failure noticed just after.)
    """
    await open_management_room(client, env)


def assert_no_bridge_device_excluded(strict: StrictTrust, env: BridgeUnderTest) -> None:
    bridge_devices = {key for key in strict.excluded if key[0] != strict.client.user_id}
    assert not bridge_devices, f"the strict client refused bridge devices: {strict.excluded}"
    assert any(user == env.bot_mxid for user, _ in strict.trusted)


async def master_key(strict: StrictTrust, user_id: str) -> str:
    raw = await strict.query([user_id])
    (public,) = raw["master_keys"][user_id]["keys"].values()
    return str(public)


async def crypto_status(strict: StrictTrust, dm: str, env: BridgeUnderTest) -> str:
    before = len(strict.client.events(dm))
    await strict.send_text(dm, "!bridge crypto status")  # settle() may have made another room the management room
    event = await strict.client.wait_for_event(
        dm,
        lambda e: e.source.get("sender") == env.bot_mxid
        and "Devices of the bridge's identities" in body_of(e)
        and strict.client.events(dm).index(e) >= before,
    )
    await strict.require_trusted(event)
    return body_of(event)


def status_line(status: str, user_id: str) -> str:
    return next(line for line in status.splitlines() if line.strip().startswith(user_id))


async def test_a_strict_client_and_the_bridge_read_each_other_in_an_encrypted_portal(
    xsign_bridge: BridgeUnderTest, loopback: LoopbackClient, strict: StrictTrust
) -> None:
    chat, room, bob, dm = await strict_portal(strict, xsign_bridge, loopback, "Strict club")

    await bob.api.send_message(chat, "loopback to a strict client")
    got = await strict.wait_for_trusted(room, "loopback to a strict client")
    assert got.sender.startswith("@hubxsign_loopback_")

    await strict.send_text(room, "strict client to loopback")
    await loopback_gets(bob, chat, "strict client to loopback")
    assert_no_bridge_device_excluded(strict, xsign_bridge)
    # The ghost's device got the key only because it passed the check.
    assert (got.sender, strict.session_origins[got.session_id].device_id) in strict.trusted

    status = await crypto_status(strict, dm, xsign_bridge)
    assert "not cross-signed: 0" in status
    assert status_line(status, xsign_bridge.bot_mxid).endswith(": cross-signed")
    assert status_line(status, got.sender).endswith(": cross-signed")


async def test_the_strict_client_refuses_an_unsigned_device_both_ways(
    xsign_bridge: BridgeUnderTest, synapse: LocalSynapse, strict: StrictTrust, tmp_path: Path
) -> None:
    """The check has teeth: a plain nio device (no cross-signing) is shut out both ways."""
    alice = strict.client
    mallory = await make_client(synapse, unique("mallory"), tmp_path / "mallory", encryption=True)
    try:
        room = await alice.create_room(invite=[mallory.user_id], encrypted=True)
        await mallory.join(room)
        await mallory.send_text(room, "from an unsigned device")
        got = await alice.wait_for_event(room, lambda e: getattr(e, "body", None) == "from an unsigned device")
        with pytest.raises(StrictRejection, match="no cross-signing identity"):
            await strict.require_trusted(got)

        sent = await strict.send_text(room, "not for unsigned devices")
        assert (mallory.user_id, mallory.nio.device_id) in strict.excluded
        seen = await mallory.wait_for_event(room, lambda e: e.event_id == sent)
        # The room key would have come before the event: the device never got it.
        assert type(seen).__name__ == "MegolmEvent"
    finally:
        await mallory.close()


async def test_after_a_restart_a_strict_client_still_reads_and_is_read_by_the_same_identities(
    xsign_bridge: BridgeUnderTest, loopback: LoopbackClient, strict: StrictTrust
) -> None:
    chat, room, bob, dm = await strict_portal(strict, xsign_bridge, loopback, "Restart club")
    await bob.api.send_message(chat, "before the restart")
    ghost = (await strict.wait_for_trusted(room, "before the restart")).sender
    bot = xsign_bridge.bot_mxid
    identities = {user: await master_key(strict, user) for user in (bot, ghost)}
    devices = {u: m.client.device_id for u, m in xsign_bridge.bridge.crypto.devices.loaded.items()}

    await xsign_bridge.restart()
    await settle(xsign_bridge, strict.client)

    await bob.api.send_message(chat, "after the restart")
    await strict.wait_for_trusted(room, "after the restart")
    await strict.send_text(room, "strict after the restart")
    await loopback_gets(bob, chat, "strict after the restart")
    await strict.send_text(dm, "!bridge ping")
    await trusted_bot_reply(strict, dm, xsign_bridge, "The bridge is running")
    assert_no_bridge_device_excluded(strict, xsign_bridge)
    # Same devices, signed by the same identities: the keys came from the database.
    assert {user: await master_key(strict, user) for user in (bot, ghost)} == identities
    for user, machine in xsign_bridge.bridge.crypto.devices.loaded.items():
        assert devices.get(user, machine.client.device_id) == machine.client.device_id


async def test_a_ghost_created_after_start_up_is_cross_signed_before_its_first_encrypted_message(
    xsign_bridge: BridgeUnderTest, loopback: LoopbackClient, strict: StrictTrust
) -> None:
    chat, room, bob, dm = await strict_portal(strict, xsign_bridge, loopback, "Growing club")
    db = xsign_bridge.bridge.db.db
    accounts_before = {row["account_id"] for row in await db.fetch("SELECT account_id FROM crypto_account")}
    newcomer = await loopback_user(loopback, unique("dora"), "Dora")
    await bob.api.add_member(chat, newcomer.user_id)

    await newcomer.api.send_message(chat, "dora's first words")
    got = await strict.wait_for_trusted(room, "dora's first words")
    # A new identity, whose device was judged when its first room key arrived, i.e.
    # before the first message it encrypted: it was cross-signed then.
    assert got.sender not in accounts_before
    origin = strict.session_origins[got.session_id]
    assert origin.cross_signed and origin.user_id == got.sender
    await strict.send_text(room, "welcome dora")
    await loopback_gets(newcomer, chat, "welcome dora")


async def test_a_replaced_device_is_signed_again_by_the_same_identity(
    xsign_bridge: BridgeUnderTest, loopback: LoopbackClient, strict: StrictTrust
) -> None:
    chat, room, bob, dm = await strict_portal(strict, xsign_bridge, loopback, "Reset club")
    await bob.api.send_message(chat, "before the reset")
    first = await strict.wait_for_trusted(room, "before the reset")
    ghost, old_device = first.sender, strict.session_origins[first.session_id].device_id
    identity = await master_key(strict, ghost)
    crypto = xsign_bridge.bridge.crypto
    # The ghost's crypto store is reset (its account, sessions and device id are gone).
    await BridgeCryptoStore(ghost, crypto.config.pickle_key, xsign_bridge.bridge.db.db).delete()

    await xsign_bridge.restart()
    await settle(xsign_bridge, strict.client)

    await bob.api.send_message(chat, "after the reset")
    second = await strict.wait_for_trusted(room, "after the reset")
    new_device = strict.session_origins[second.session_id].device_id
    assert new_device != old_device
    assert await master_key(strict, ghost) == identity
    await strict.send_text(room, "strict after the reset")
    await loopback_gets(bob, chat, "strict after the reset")
    assert_no_bridge_device_excluded(strict, xsign_bridge)


async def test_devices_from_before_the_keys_were_kept_are_signed_without_a_manual_step(
    xsign_bridge: BridgeUnderTest, loopback: LoopbackClient, strict: StrictTrust, synapse: LocalSynapse
) -> None:
    chat, room, bob, dm = await strict_portal(strict, xsign_bridge, loopback, "Upgrade club")
    await bob.api.send_message(chat, "before the upgrade")
    first = await strict.wait_for_trusted(room, "before the upgrade")
    ghost, device = first.sender, strict.session_origins[first.session_id].device_id
    identity = await master_key(strict, ghost)
    db = xsign_bridge.bridge.db.db

    # 1. A device signed by an identity whose keys were not kept (the first encryption
    # release threw them away): still valid, so it is left alone, not reset.
    await db.execute("DELETE FROM hub_cross_signing WHERE user_id=$1", ghost)
    await xsign_bridge.restart()
    await settle(xsign_bridge, strict.client)
    await bob.api.send_message(chat, "kept identity")
    await strict.wait_for_trusted(room, "kept identity")
    assert await master_key(strict, ghost) == identity
    status = await crypto_status(strict, dm, xsign_bridge)
    assert "whose keys the bridge does not hold" in status_line(status, ghost)

    # 2. A device its identity does not sign (an identity published without signing it,
    # as when signing failed before), made while the bridge is down for its upgrade:
    # once it is up again, the device is signed.
    await xsign_bridge.stop()
    await publish_identity_without_signing(synapse, xsign_bridge, ghost)
    assert not (await strict.device_verdict(ghost, str(device))).cross_signed
    await xsign_bridge.start()
    await settle(xsign_bridge, strict.client)
    await bob.api.send_message(chat, "signed on upgrade")
    await strict.wait_for_trusted(room, "signed on upgrade")
    assert (await strict.device_verdict(ghost, str(device))).cross_signed
    status = await crypto_status(strict, dm, xsign_bridge)
    assert status_line(status, ghost).endswith(": cross-signed")
    assert "not cross-signed: 0" in status


async def test_the_bots_recovery_key_is_printed_once_and_opens_its_secret_storage(
    xsign_bridge: BridgeUnderTest,
    synapse: LocalSynapse,
    strict: StrictTrust,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # mautrix logs request bodies at DEBUG: check those too
    bot = xsign_bridge.bot_mxid
    settings = xsign_bridge.settings["encryption"]
    settings["bot_recovery_key"] = True
    xsign_bridge.write_config()
    try:
        capsys.readouterr()
        await xsign_bridge.restart()
        printed = capsys.readouterr().out
        recovery_key = next(
            line.strip() for line in printed.splitlines()
            if line.startswith("    ") and line.strip()
        )
        await xsign_bridge.restart()
        assert recovery_key not in capsys.readouterr().out  # once only
    finally:
        settings.pop("bot_recovery_key")
        xsign_bridge.write_config()
    assert recovery_key not in caplog.text
    assert recovery_key.replace(" ", "") not in caplog.text
    stored = await xsign_bridge.bridge.crypto.cross_signing.stored(bot)
    assert stored is not None
    for seed in stored.seeds:  # the private keys appear in no log line, in any encoding
        assert encode_base64(seed) not in caplog.text and seed.hex() not in caplog.text

    key = decode_recovery_key(recovery_key)
    default = await account_data(synapse, xsign_bridge, bot, "m.secret_storage.default_key")
    assert stored.recovery_key_id == default["key"]
    metadata = await account_data(synapse, xsign_bridge, bot, f"m.secret_storage.key.{default['key']}")
    assert metadata["algorithm"] == "m.secret_storage.v1.aes-hmac-sha2"
    assert ssss_mac(key, metadata["iv"]) == metadata["mac"].rstrip("=")
    stored = await account_data(synapse, xsign_bridge, bot, "m.cross_signing.master")
    seed = base64.b64decode(pad(ssss_decrypt(key, "m.cross_signing.master", stored["encrypted"][default["key"]])))
    assert encode_base64(bytes(SigningKey(seed).verify_key)) == await master_key(strict, bot)
    # And the bot's device is signed by that identity.
    device = xsign_bridge.bridge.crypto.bot.client.device_id
    assert (await strict.device_verdict(bot, device)).cross_signed


# Helpers: the appservice's view of the server, and SSSS read independently -------------------


def as_token(env: BridgeUnderTest) -> str:
    return str(yaml.safe_load(env.registration_path.read_text())["as_token"])


async def as_request(
    synapse: LocalSynapse, env: BridgeUnderTest, method: str, path: str, user_id: str,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {as_token(env)}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.request(method, f"{synapse.url}{path}", params={"user_id": user_id},
                                json=body) as resp:
            assert resp.status == 200, await resp.text()
            return dict(await resp.json())


async def account_data(synapse: LocalSynapse, env: BridgeUnderTest, user: str, kind: str) -> dict[str, Any]:
    path = f"/_matrix/client/v3/user/{quote(user)}/account_data/{quote(kind, safe='')}"
    return await as_request(synapse, env, "GET", path, user)


async def publish_identity_without_signing(synapse: LocalSynapse, env: BridgeUnderTest, user: str) -> None:
    """Replace the user's cross-signing identity with one that signs none of its devices."""

    def key_object(usage: str, public: SigningKey) -> dict[str, Any]:
        encoded = encode_base64(bytes(public.verify_key))
        return {"user_id": user, "usage": [usage], "keys": {f"ed25519:{encoded}": encoded}}

    master, self_signing, user_signing = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    master.alg, master.version = "ed25519", encode_base64(bytes(master.verify_key))  # type: ignore[attr-defined]
    body = {
        "master_key": key_object("master", master),
        "self_signing_key": sign_json(key_object("self_signing", self_signing), user, master),
        "user_signing_key": sign_json(key_object("user_signing", user_signing), user, master),
    }
    await as_request(synapse, env, "POST", "/_matrix/client/v3/keys/device_signing/upload", user, body)


def pad(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return raw + b"=" * (-len(raw) % 4)


def decode_recovery_key(text: str) -> bytes:
    """The spec's recovery key: base58 of 0x8B 0x01, the 32-byte key, a parity byte."""
    import base58

    data = base58.b58decode(text.replace(" ", ""))
    assert len(data) == 35 and data[:2] == b"\x8b\x01"
    parity = 0
    for byte in data[:34]:
        parity ^= byte
    assert parity == data[34]
    return data[2:34]


def _derive(key: bytes, name: str) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    both = HKDF(algorithm=SHA256(), length=64, salt=b"\0" * 32, info=name.encode()).derive(key)
    return both[:32], both[32:]


def _aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    cipher = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return cipher.update(data) + cipher.finalize()


def _hmac(key: bytes, data: bytes) -> bytes:
    import hashlib
    import hmac

    return hmac.new(key, data, hashlib.sha256).digest()


def ssss_mac(key: bytes, iv: str) -> str:
    """The MAC that proves a key is the secret storage key (MSC1946 / the spec)."""
    aes, mac = _derive(key, "")
    return encode_base64(_hmac(mac, _aes_ctr(aes, base64.b64decode(pad(iv)), b"\0" * 32)))


def ssss_decrypt(key: bytes, name: str, encrypted: dict[str, str]) -> bytes:
    aes, mac = _derive(key, name)
    ciphertext = base64.b64decode(pad(encrypted["ciphertext"]))
    assert _hmac(mac, ciphertext) == base64.b64decode(pad(encrypted["mac"]))
    return _aes_ctr(aes, base64.b64decode(pad(encrypted["iv"])), ciphertext)
