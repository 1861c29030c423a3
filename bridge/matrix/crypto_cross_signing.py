"""Cross-signing identities of the bridge's users, kept so every device can be signed.

Each bridge user with a device (the bot and every ghost that sends in an encrypted room)
has a cross-signing identity: master, self-signing and user-signing keys, published on
the homeserver, with the user's device signed by the self-signing key. Clients that only
share keys with, and only trust messages from, devices their owner cross-signed then
treat the bridge's devices like anyone's.

The private keys (32-byte seeds) are kept in ``hub_cross_signing``, sealed with a key
derived from ``encryption.pickle_key`` (crypto_trust.SeedSeal): after a restart, or when
a device is replaced, the same identity signs again and clients see no identity change.
Key material is never logged.

Optionally the bot's identity also goes into its secret storage (SSSS, MSC1946) under a
recovery key that is printed once on standard output for the admin.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import olm
from mautrix.api import Method, Path
from mautrix.crypto.cross_signing_key import CrossSigningSeeds
from mautrix.crypto.signature import canonical_json
from mautrix.crypto.ssss import Key as SSSSKey
from mautrix.errors import MatrixRequestError
from mautrix.types import CrossSigner, SigningKey, UserID
from mautrix.util.async_db import Database

from .crypto_trust import RawKeys, SeedSeal, device_keys_of, device_trust

if TYPE_CHECKING:
    from .crypto_devices import BridgeOlmMachine

log = logging.getLogger("bridge.matrix.crypto.cross_signing")

APPSERVICE_AUTH = "m.login.application_service"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS hub_cross_signing (
    user_id          TEXT PRIMARY KEY,
    master_key       TEXT NOT NULL,
    sealed_seeds     TEXT NOT NULL,
    recovery_key_id  TEXT,
    created_at       BIGINT NOT NULL
)
"""


class CrossSigningError(Exception):
    """The homeserver refused a cross-signing upload (the reason is in the message)."""


@dataclass(frozen=True)
class IdentityStatus:
    """One bridge identity's device and whether it is cross-signed, for the admin."""

    user_id: str
    device_id: str
    cross_signed: bool
    problem: str | None
    keys_held: bool
    """The bridge holds the private keys of the identity that is on the homeserver."""


@dataclass(frozen=True)
class StoredIdentity:
    master_key: str
    seeds: CrossSigningSeeds
    recovery_key_id: str | None


def print_to_admin(text: str) -> None:
    """Standard output, not the log: the admin sees it once, log files never hold it."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def query_keys_raw(machine: BridgeOlmMachine, users: list[str]) -> RawKeys:
    """``/keys/query`` as raw JSON: signatures are checked over exactly what the server has."""
    body = {"device_keys": {user: [] for user in users}, "timeout": 10000}
    return await machine.client.api.request(Method.POST, Path.v3.keys.query, body)


def appservice_auth(error: MatrixRequestError, user_id: str) -> dict[str, Any] | None:
    """The UIA ``auth`` for a retry, if the homeserver offered appservice authentication.

    Synapse (1.1xx with MSC4190) lets appservice users upload cross-signing keys without
    interactive auth; homeservers that ask for it offer ``m.login.application_service``.
    """
    if getattr(error, "http_status", None) != 401:
        return None
    try:
        body = json.loads(getattr(error, "text", "") or "{}")
    except ValueError:
        return None
    flows = body.get("flows") if isinstance(body, dict) else None
    if not isinstance(flows, list):
        return None
    if not any(flow.get("stages") == [APPSERVICE_AUTH] for flow in flows if isinstance(flow, dict)):
        return None
    auth: dict[str, Any] = {
        "type": APPSERVICE_AUTH,
        "identifier": {"type": "m.id.user", "user": user_id},
        "user": user_id,  # the identifier's older form, still read by some servers
    }
    if body.get("session"):
        auth["session"] = body["session"]
    return auth


class CrossSigningKeys:
    """Keeps each identity's cross-signing keys and signs its device with them."""

    def __init__(
        self,
        db: Database,
        pickle_key: str,
        *,
        announce: Callable[[str], None] = print_to_admin,
    ) -> None:
        self._db = db
        self._seal = SeedSeal(pickle_key)
        self._announce = announce

    async def start(self) -> None:
        # Created here rather than in the bridge's numbered upgrades: like mautrix's
        # crypto_* tables, it belongs to the encryption code and exists only with it on.
        await self._db.execute(_CREATE_TABLE)

    async def stored(self, user_id: str) -> StoredIdentity | None:
        row = await self._db.fetchrow(
            "SELECT master_key, sealed_seeds, recovery_key_id FROM hub_cross_signing "
            "WHERE user_id=$1",
            user_id,
        )
        if row is None:
            return None
        try:
            seeds = self._seal.open(user_id, row["sealed_seeds"])
        except ValueError:
            # Sealed with another pickle_key: the keys are lost, as the Olm accounts are.
            log.warning("The cross-signing keys of %s can't be opened with this pickle_key; "
                        "a new identity is made when its device needs signing", user_id)
            return None
        return StoredIdentity(row["master_key"], seeds, row["recovery_key_id"])

    async def held_master_keys(self) -> dict[str, str]:
        """The public master key of every identity whose private keys the bridge holds."""
        rows = await self._db.fetch("SELECT user_id, master_key FROM hub_cross_signing")
        return {row["user_id"]: row["master_key"] for row in rows}

    async def _store(self, user_id: str, seeds: CrossSigningSeeds) -> StoredIdentity:
        master = olm.PkSigning(seeds.master_key).public_key
        await self._db.execute(
            "INSERT INTO hub_cross_signing (user_id, master_key, sealed_seeds, created_at) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO UPDATE SET "
            "master_key=excluded.master_key, sealed_seeds=excluded.sealed_seeds, "
            "recovery_key_id=NULL, created_at=excluded.created_at",
            user_id,
            master,
            self._seal.seal(user_id, seeds),
            int(time.time() * 1000),
        )
        return StoredIdentity(master, seeds, None)

    # Making sure a device is signed -----------------------------------------------------

    async def ensure_signed(self, machine: BridgeOlmMachine, raw: RawKeys | None = None) -> None:
        """Make the machine's device cross-signed by its user; raises if the server refuses.

        ``raw`` is a ``/keys/query`` answer for the user that the caller already has.
        Nothing is uploaded when the device is already signed by the identity on the
        server: after a restart this costs no request.
        """
        user, device = machine.client.mxid, machine.client.device_id
        if raw is None:
            raw = await query_keys_raw(machine, [user])
        trust = device_trust(raw, user, device)
        stored = await self.stored(user)
        if stored is None and trust.cross_signed:
            # Signed by an identity made before the bridge kept the keys: it is valid, and
            # replacing it would show every client an identity change for nothing.
            log.debug("Device %s of %s is cross-signed by an identity whose keys the "
                      "bridge does not hold", device, user)
            return
        if stored is not None and trust.cross_signed and trust.master_key == stored.master_key:
            return
        if stored is None:
            stored = await self._store(user, CrossSigningSeeds.generate())
            await self._publish(machine, stored.seeds)
            log.info("Made a cross-signing identity for %s", user)
        elif trust.master_key != stored.master_key or trust.self_signing_key is None:
            if trust.master_key not in (None, stored.master_key):
                log.warning("The cross-signing identity of %s on the homeserver is not the "
                            "bridge's; publishing the bridge's again", user)
            await self._publish(machine, stored.seeds)
        if trust.device_known:
            device_keys = device_keys_of(raw, user, device)
        else:
            device_keys = device_keys_of(await query_keys_raw(machine, [user]), user, device)
        if device_keys is None:
            raise CrossSigningError(f"device {device} of {user} has no keys to sign")
        await self._sign_device(machine, device_keys, stored.seeds)
        log.info("Device %s of %s is cross-signed", device, user)

    async def _publish(self, machine: BridgeOlmMachine, seeds: CrossSigningSeeds) -> None:
        """Upload the identity's public keys, with appservice auth if the server asks."""
        keys = seeds.to_keys()
        try:
            try:
                await machine._publish_cross_signing_keys(keys)
            except MatrixRequestError as e:
                auth = appservice_auth(e, machine.client.mxid)
                if auth is None:
                    raise CrossSigningError(
                        f"the homeserver refused the cross-signing keys of {machine.client.mxid} "
                        f"({e}); it must let appservice users upload them (Synapse does with "
                        "MSC4190, see docs/encryption.md)"
                    ) from e
                await machine._publish_cross_signing_keys(keys, auth=auth)
        finally:
            # mautrix keeps the private keys on the machine; the sealed copy is enough.
            machine._cross_signing_private_keys = None

    @staticmethod
    async def _sign_device(
        machine: BridgeOlmMachine, device_keys: dict[str, Any], seeds: CrossSigningSeeds
    ) -> None:
        user, device = machine.client.mxid, machine.client.device_id
        self_signing = olm.PkSigning(seeds.self_signing_key)
        unsigned = {k: v for k, v in device_keys.items() if k not in ("signatures", "unsigned")}
        signature = self_signing.sign(canonical_json(unsigned))
        signed = {
            **unsigned,
            "signatures": {user: {f"ed25519:{self_signing.public_key}": signature}},
        }
        answer = await machine.client.api.request(
            Method.POST, Path.v3.keys.signatures.upload, {user: {device: signed}}
        )
        failures = (answer or {}).get("failures") or {}
        if failures:
            raise CrossSigningError(
                f"the homeserver refused the signature of device {device} of {user}: "
                f"{json.dumps(failures)}"
            )
        signing_key = (unsigned.get("keys") or {}).get(f"ed25519:{device}")
        if signing_key:
            await machine.crypto_store.put_signature(
                CrossSigner(UserID(user), SigningKey(signing_key)),
                CrossSigner(UserID(user), SigningKey(self_signing.public_key)),
                signature,
            )

    async def report(self, bot: BridgeOlmMachine, chunk: int = 100) -> list[IdentityStatus]:
        """Every identity with a device, checked against the homeserver's keys right now."""
        rows = await self._db.fetch(
            "SELECT account_id, device_id FROM crypto_account ORDER BY account_id"
        )
        held = await self.held_master_keys()
        statuses = []
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            raw = await query_keys_raw(bot, [row["account_id"] for row in part])
            for row in part:
                user, device = row["account_id"], row["device_id"]
                trust = device_trust(raw, user, device)
                statuses.append(
                    IdentityStatus(
                        user_id=user,
                        device_id=device,
                        cross_signed=trust.cross_signed,
                        problem=trust.problem,
                        keys_held=trust.master_key is not None and held.get(user) == trust.master_key,
                    )
                )
        return statuses

    # The bot's recovery key ----------------------------------------------------------------

    async def ensure_recovery_key(self, bot: BridgeOlmMachine) -> None:
        """Put the bot's identity in its secret storage; print the recovery key once.

        Done once: when the bot's identity has a recovery key already (made at an earlier
        start), nothing happens. When the bridge does not hold the bot's keys (an identity
        from before it kept them), a new identity is made first, since the keys to store
        are gone.
        """
        user = bot.client.mxid
        stored = await self.stored(user)
        if stored is not None and stored.recovery_key_id:
            return
        if stored is None:
            stored = await self._store(user, CrossSigningSeeds.generate())
            await self._publish(bot, stored.seeds)
            raw = await query_keys_raw(bot, [user])
            device_keys = device_keys_of(raw, user, bot.client.device_id)
            if device_keys is None:
                raise CrossSigningError(f"the bot's device {bot.client.device_id} has no keys")
            await self._sign_device(bot, device_keys, stored.seeds)
        key = SSSSKey.generate()
        await bot.ssss.set_key_data(key.id, key.metadata)
        await bot._upload_cross_signing_keys_to_ssss(key, stored.seeds)
        await bot.ssss.set_default_key_id(key.id)
        await self._db.execute(
            "UPDATE hub_cross_signing SET recovery_key_id=$2 WHERE user_id=$1", user, key.id
        )
        log.info("The bot's cross-signing keys are in its secret storage; the recovery key "
                 "was printed on standard output (not in this log)")
        self._announce(
            "\n".join(
                [
                    "",
                    f"Recovery key of the bridge bot {user} (shown once, not logged):",
                    f"    {key.recovery_key}",
                    "It opens the bot's secret storage, which holds its cross-signing keys.",
                    "Keep it somewhere safe; the bridge itself does not need it.",
                    "",
                ]
            )
        )
