"""Reading cross-signing trust from a raw ``/keys/query`` answer, and the at-rest seal.

Pure code (no network, no database), shared by the signing code and the status command:

* :func:`device_trust` says whether a device is cross-signed by its owner: signed by the
  user's self-signing key, which is signed by the user's master key (signatures checked,
  not just present) — the rule clients apply before they share keys with a device or
  trust its messages ("exclude insecure devices", Rust crypto's "cross-signed").
* :class:`SeedSeal` encrypts an identity's private cross-signing seeds for the database.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from mautrix.crypto.cross_signing_key import CrossSigningSeeds
from mautrix.crypto.signature import verify_signature_json
from mautrix.types import SigningKey, UserID

RawKeys = dict[str, Any]
"""A ``/keys/query`` response body as JSON."""


@dataclass(frozen=True)
class DeviceTrust:
    """What the homeserver's keys say about one device of one user."""

    master_key: str | None
    """The user's published master key (public), if any."""
    self_signing_key: str | None
    """The self-signing key, if it is present and validly signed by the master key."""
    device_known: bool
    """The device has keys on the homeserver."""
    cross_signed: bool
    """The device is signed by the self-signing key, which is signed by the master key."""
    problem: str | None
    """Why it is not cross-signed, in words for an admin (None when it is)."""


def _only_key(key_object: Any, usage: str) -> str | None:
    """The single ed25519 public key of a cross-signing key object of ``usage``."""
    if not isinstance(key_object, dict) or usage not in (key_object.get("usage") or []):
        return None
    keys = key_object.get("keys") or {}
    if len(keys) != 1:
        return None
    (key_id, public), = keys.items()
    return str(public) if str(key_id) == f"ed25519:{public}" else None


def _signed_by(obj: dict[str, Any], user_id: str, public_key: str) -> bool:
    if not isinstance(obj.get("signatures"), dict):
        return False
    return verify_signature_json(obj, UserID(user_id), public_key, SigningKey(public_key))


def device_trust(raw: RawKeys, user_id: str, device_id: str) -> DeviceTrust:
    """Whether ``device_id`` of ``user_id`` is cross-signed by its owner, from ``raw``."""
    master = _only_key((raw.get("master_keys") or {}).get(user_id), "master")
    device = ((raw.get("device_keys") or {}).get(user_id) or {}).get(device_id)
    known = isinstance(device, dict) and bool(device.get("keys"))
    ssk_object = (raw.get("self_signing_keys") or {}).get(user_id)
    ssk = _only_key(ssk_object, "self_signing")

    def verdict(problem: str | None, valid_ssk: str | None = None) -> DeviceTrust:
        return DeviceTrust(master, valid_ssk, known, problem is None, problem)

    if not known:
        return verdict("the device has no keys on the homeserver")
    if master is None:
        return verdict("the user has no cross-signing identity")
    if ssk is None:
        return verdict("the user has no self-signing key")
    if not _signed_by(ssk_object, user_id, master):
        return verdict("the self-signing key is not signed by the master key")
    if not _signed_by(device, user_id, ssk):
        return verdict("the device is not signed by the self-signing key", ssk)
    return verdict(None, ssk)


def device_keys_of(raw: RawKeys, user_id: str, device_id: str) -> dict[str, Any] | None:
    """The device's keys object exactly as the homeserver has it (what gets signed)."""
    device = ((raw.get("device_keys") or {}).get(user_id) or {}).get(device_id)
    return device if isinstance(device, dict) else None


_SEAL_VERSION = "v1"
_SEED_LENGTH = 32


class SeedSeal:
    """Encrypts cross-signing seeds for the database (AES-256-GCM).

    The key is derived (HKDF-SHA256) from ``encryption.pickle_key`` for this one purpose,
    so the pickle key is never used directly as an AES key and a database without the
    config holds no usable signing key. The user id is bound as associated data: a sealed
    row copied to another user does not open.
    """

    def __init__(self, pickle_key: str) -> None:
        self._key = HKDF(
            pickle_key.encode("utf-8"),
            32,
            b"hub bridge",
            SHA256,
            context=b"cross-signing seeds at rest " + _SEAL_VERSION.encode(),
        )

    def __repr__(self) -> str:
        return "SeedSeal(<key hidden>)"

    def seal(self, user_id: str, seeds: CrossSigningSeeds) -> str:
        nonce = secrets.token_bytes(12)
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce)
        cipher.update(user_id.encode("utf-8"))
        plain = seeds.master_key + seeds.self_signing_key + seeds.user_signing_key
        ciphertext, tag = cipher.encrypt_and_digest(plain)
        return f"{_SEAL_VERSION}.{base64.b64encode(nonce + ciphertext + tag).decode()}"

    def open(self, user_id: str, sealed: str) -> CrossSigningSeeds:
        """The seeds; raises ValueError if the key or the user is not the sealing one."""
        version, _, payload = sealed.partition(".")
        if version != _SEAL_VERSION:
            raise ValueError(f"unknown seal version {version!r}")
        data = base64.b64decode(payload)
        nonce, ciphertext, tag = data[:12], data[12:-16], data[-16:]
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce)
        cipher.update(user_id.encode("utf-8"))
        plain = cipher.decrypt_and_verify(ciphertext, tag)  # ValueError when tampered
        if len(plain) != 3 * _SEED_LENGTH:
            raise ValueError("sealed seeds have the wrong length")
        n = _SEED_LENGTH
        return CrossSigningSeeds(
            master_key=plain[:n], self_signing_key=plain[n : 2 * n], user_signing_key=plain[2 * n :]
        )
