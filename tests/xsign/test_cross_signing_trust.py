"""Pure parts of cross-signing: the trust rule over raw keys, the at-rest seal, UIA auth.

Key objects are made and signed here with PyNaCl and signedjson, not the bridge's code
(python-olm), so the bridge's verdicts are checked against an independent signer.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mautrix.crypto.cross_signing_key import CrossSigningSeeds
from mautrix.errors import MatrixUnknownRequestError
from nacl.signing import SigningKey
from signedjson.sign import sign_json
from unpaddedbase64 import encode_base64

from bridge.matrix.crypto_cross_signing import APPSERVICE_AUTH, appservice_auth
from bridge.matrix.crypto_trust import SeedSeal, device_trust

USER = "@hub_loopback_bob:test.local"
DEVICE = "HUBDEVICE"


def _named(key: SigningKey, version: str | None = None) -> SigningKey:
    """signedjson names a key ``alg:version``; cross-signing keys are named by their public key."""
    key.alg = "ed25519"  # type: ignore[attr-defined]
    key.version = version or encode_base64(bytes(key.verify_key))  # type: ignore[attr-defined]
    return key


def _public(key: SigningKey) -> str:
    return encode_base64(bytes(key.verify_key))


def _key_object(usage: str, key: SigningKey) -> dict[str, Any]:
    return {"user_id": USER, "usage": [usage], "keys": {f"ed25519:{_public(key)}": _public(key)}}


def raw_keys(*, sign_device: bool = True, sign_ssk: bool = True) -> dict[str, Any]:
    """A ``/keys/query`` answer for one user with one device, signed as asked."""
    master, ssk = _named(SigningKey.generate()), _named(SigningKey.generate())
    device_key = _named(SigningKey.generate(), DEVICE)
    device = {
        "user_id": USER,
        "device_id": DEVICE,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"ed25519:{DEVICE}": _public(device_key), f"curve25519:{DEVICE}": "c" * 43},
    }
    device = sign_json(device, USER, device_key)
    if sign_device:
        device = sign_json(device, USER, ssk)
    self_signing = _key_object("self_signing", ssk)
    if sign_ssk:
        self_signing = sign_json(self_signing, USER, master)
    return {
        "device_keys": {USER: {DEVICE: device}},
        "master_keys": {USER: _key_object("master", master)},
        "self_signing_keys": {USER: self_signing},
    }


def test_a_device_signed_by_a_self_signing_key_signed_by_the_master_key_is_cross_signed() -> None:
    raw = raw_keys()
    trust = device_trust(raw, USER, DEVICE)
    assert trust.cross_signed and trust.problem is None
    (master,) = raw["master_keys"][USER]["keys"].values()
    assert trust.master_key == master


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda raw: raw["device_keys"][USER].clear(), "no keys on the homeserver"),
        (lambda raw: raw["master_keys"].clear(), "no cross-signing identity"),
        (lambda raw: raw["self_signing_keys"].clear(), "no self-signing key"),
        (lambda raw: raw["self_signing_keys"][USER].update(usage=["user_signing"]), "no self-signing key"),
        # Signed once, then changed: the signature no longer holds.
        (lambda raw: raw["device_keys"][USER][DEVICE]["keys"].update({f"curve25519:{DEVICE}": "d" * 43}),
         "not signed by the self-signing key"),
    ],
)
def test_a_device_is_not_cross_signed_when_any_link_is_missing_or_broken(change: Any, problem: str) -> None:
    raw = raw_keys()
    change(raw)
    trust = device_trust(raw, USER, DEVICE)
    assert not trust.cross_signed
    assert problem in (trust.problem or "")


def test_signatures_must_be_valid_not_just_present() -> None:
    assert "not signed by the master key" in (device_trust(raw_keys(sign_ssk=False), USER, DEVICE).problem or "")
    assert "not signed by the self-signing" in (device_trust(raw_keys(sign_device=False), USER, DEVICE).problem or "")
    # A signature copied from another identity's self-signing key does not count either.
    raw, other = raw_keys(), raw_keys()
    raw["self_signing_keys"] = copy.deepcopy(other["self_signing_keys"])
    assert not device_trust(raw, USER, DEVICE).cross_signed


seeds_strategy = st.builds(
    CrossSigningSeeds,
    master_key=st.binary(min_size=32, max_size=32),
    self_signing_key=st.binary(min_size=32, max_size=32),
    user_signing_key=st.binary(min_size=32, max_size=32),
)


@given(seeds=seeds_strategy, user=st.text(min_size=1, max_size=60))
def test_sealed_seeds_open_to_the_same_seeds(seeds: CrossSigningSeeds, user: str) -> None:
    seal = SeedSeal("a pickle key for tests only")
    assert seal.open(user, seal.seal(user, seeds)) == seeds


def test_sealed_seeds_show_nothing_and_open_only_with_the_key_and_user() -> None:
    seeds = CrossSigningSeeds.generate()
    seal = SeedSeal("a pickle key for tests only")
    sealed = seal.seal(USER, seeds)
    for seed in seeds:
        for encoding in (seed.hex(), base64.b64encode(seed).decode(), encode_base64(seed)):
            assert encoding[:16] not in sealed
    assert seal.seal(USER, seeds) != sealed  # a fresh nonce each time
    with pytest.raises(ValueError):
        SeedSeal("another pickle key").open(USER, sealed)
    with pytest.raises(ValueError):
        seal.open("@someone_else:test.local", sealed)
    assert "pickle" not in repr(seal) and "key for tests" not in repr(seal)


def _uia_error(status: int, body: dict[str, Any]) -> MatrixUnknownRequestError:
    return MatrixUnknownRequestError(status, json.dumps(body))


def test_appservice_auth_is_sent_only_when_the_homeserver_offers_it() -> None:
    offered = _uia_error(401, {"session": "s1", "flows": [{"stages": [APPSERVICE_AUTH]}], "params": {}})
    auth = appservice_auth(offered, USER)
    assert auth == {
        "type": APPSERVICE_AUTH,
        "identifier": {"type": "m.id.user", "user": USER},
        "user": USER,
        "session": "s1",
    }
    password_only = _uia_error(401, {"session": "s2", "flows": [{"stages": ["m.login.password"]}]})
    assert appservice_auth(password_only, USER) is None
    assert appservice_auth(_uia_error(403, {"errcode": "M_FORBIDDEN"}), USER) is None
    assert appservice_auth(MatrixUnknownRequestError(401, "not json"), USER) is None
