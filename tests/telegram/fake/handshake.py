"""The server side of MTProto's auth key exchange, for a fake Telegram with its own RSA key.

The client asks for a ``res_pq``, factorizes ``pq``, encrypts its half of the secret with
the server's RSA public key (chosen by the fingerprint the server announces), and both
sides finish a 2048-bit Diffie-Hellman exchange that yields the auth key
(https://core.telegram.org/mtproto/auth_key). A client that does not know the server's
key can't send step 2, so only a client configured with the matching public key gets an
auth key here.

Checks follow the protocol: nonces must match, the RSA block must carry the SHA-1 of its
content, and every DH value must be inside the safety range. Anything else ends the
exchange (the server closes the connection, as Telegram does).
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass
from hashlib import sha1

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa as crypto_rsa
from telethon import password as pw
from telethon.crypto import AES, AuthKey
from telethon.extensions import BinaryReader
from telethon.helpers import generate_key_data_from_nonce
from telethon.tl.functions import ReqDHParamsRequest, ReqPqMultiRequest, SetClientDHParamsRequest
from telethon.tl.tlobject import TLObject
from telethon.tl.types import ClientDHInnerData, DhGenOk, PQInnerData, ResPQ, ServerDHInnerData, ServerDHParamsOk

# The factors of Telegram's documented example pq (0x17ED48941A08F981).
_P, _Q = 1229739323, 1402015859
_G = 3
_SAFETY = 2 ** (2048 - 64)


class HandshakeFailure(Exception):
    """The client broke the protocol; the server drops the connection."""


def good_prime() -> bytes:
    """Telegram's 2048-bit safe prime (used for DH and SRP), as Telethon knows it."""
    for const in pw.check_prime_and_good.__code__.co_consts:
        if isinstance(const, tuple) and len(const) == 256:
            return bytes(const)
    raise RuntimeError("Telethon's known prime not found")


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


@dataclass(frozen=True)
class ServerRsaKey:
    """The fake server's RSA key pair (2048 bits, as MTProto needs)."""

    n: int
    e: int
    d: int

    @classmethod
    def generate(cls) -> ServerRsaKey:
        private = crypto_rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = private.private_numbers()
        return cls(numbers.public_numbers.n, numbers.public_numbers.e, numbers.d)

    @property
    def fingerprint(self) -> int:
        """Computed here from the wire format, independently of the bridge's code."""
        data = TLObject.serialize_bytes(_int_bytes(self.n)) + TLObject.serialize_bytes(_int_bytes(self.e))
        return struct.unpack("<q", sha1(data).digest()[-8:])[0]

    def public_pem(self, pkcs1: bool = True) -> str:
        """``BEGIN RSA PUBLIC KEY`` (PKCS#1) or ``BEGIN PUBLIC KEY`` (SubjectPublicKeyInfo)."""
        public = crypto_rsa.RSAPublicNumbers(self.e, self.n).public_key()
        form = serialization.PublicFormat.PKCS1 if pkcs1 else serialization.PublicFormat.SubjectPublicKeyInfo
        return public.public_bytes(serialization.Encoding.PEM, form).decode("ascii")

    def decrypt_block(self, block: bytes) -> bytes:
        """Raw RSA, as MTProto 1's ``sha1(data) + data + padding`` block was encrypted."""
        value = pow(int.from_bytes(block, "big"), self.d, self.n)
        if value >= 1 << (255 * 8):
            raise HandshakeFailure("the RSA block does not decrypt to 255 bytes")
        return value.to_bytes(255, "big")


class KeyExchange:
    """One auth key exchange on one connection, step by step."""

    def __init__(self, key: ServerRsaKey) -> None:
        self.key = key
        self.nonce = 0
        self.server_nonce = 0
        self.new_nonce = 0
        self._a = 0
        self._dh_prime = int.from_bytes(good_prime(), "big")
        self.auth_key: bytes | None = None

    def answer(self, request: TLObject) -> TLObject:
        if isinstance(request, ReqPqMultiRequest):
            return self._res_pq(request)
        if isinstance(request, ReqDHParamsRequest):
            return self._dh_params(request)
        if isinstance(request, SetClientDHParamsRequest):
            return self._dh_gen(request)
        raise HandshakeFailure(f"{type(request).__name__} is not part of the key exchange")

    def _res_pq(self, request: ReqPqMultiRequest) -> ResPQ:
        self.nonce = request.nonce
        self.server_nonce = int.from_bytes(os.urandom(16), "big", signed=True)
        return ResPQ(nonce=self.nonce, server_nonce=self.server_nonce, pq=_int_bytes(_P * _Q),
                     server_public_key_fingerprints=[self.key.fingerprint])

    def _check_nonces(self, obj: TLObject) -> None:
        if obj.nonce != self.nonce or obj.server_nonce != self.server_nonce:
            raise HandshakeFailure("nonce mismatch")

    def _dh_params(self, request: ReqDHParamsRequest) -> ServerDHParamsOk:
        self._check_nonces(request)
        if request.public_key_fingerprint != self.key.fingerprint:
            raise HandshakeFailure("step 2 names a key this server does not have")
        if (int.from_bytes(request.p, "big"), int.from_bytes(request.q, "big")) != (_P, _Q):
            raise HandshakeFailure("wrong factorization of pq")
        plain = self.key.decrypt_block(request.encrypted_data)
        with BinaryReader(plain[20:]) as reader:
            inner = reader.tgread_object()
            length = reader.tell_position()
        if not isinstance(inner, PQInnerData) or sha1(plain[20:20 + length]).digest() != plain[:20]:
            raise HandshakeFailure("step 2 was not encrypted with this server's public key")
        self._check_nonces(inner)
        self.new_nonce = inner.new_nonce
        while True:
            self._a = int.from_bytes(os.urandom(256), "big") % self._dh_prime
            g_a = pow(_G, self._a, self._dh_prime)
            if _SAFETY <= g_a <= self._dh_prime - _SAFETY:
                break
        answer = bytes(ServerDHInnerData(nonce=self.nonce, server_nonce=self.server_nonce, g=_G,
                                         dh_prime=_int_bytes(self._dh_prime), g_a=_int_bytes(g_a),
                                         server_time=int(time.time())))
        answer = sha1(answer).digest() + answer
        answer += os.urandom(-len(answer) % 16)
        key, iv = generate_key_data_from_nonce(self.server_nonce, self.new_nonce)
        return ServerDHParamsOk(nonce=self.nonce, server_nonce=self.server_nonce,
                                encrypted_answer=AES.encrypt_ige(answer, key, iv))

    def _dh_gen(self, request: SetClientDHParamsRequest) -> DhGenOk:
        self._check_nonces(request)
        if not self._a:
            raise HandshakeFailure("step 3 before step 2")
        key, iv = generate_key_data_from_nonce(self.server_nonce, self.new_nonce)
        plain = AES.decrypt_ige(request.encrypted_data, key, iv)
        with BinaryReader(plain[20:]) as reader:
            inner = reader.tgread_object()
            length = reader.tell_position()
        if not isinstance(inner, ClientDHInnerData) or sha1(plain[20:20 + length]).digest() != plain[:20]:
            raise HandshakeFailure("step 3 has a bad hash")
        self._check_nonces(inner)
        g_b = int.from_bytes(inner.g_b, "big")
        if not _SAFETY <= g_b <= self._dh_prime - _SAFETY:
            raise HandshakeFailure("g_b is outside the safety range")
        self.auth_key = _int_bytes(pow(g_b, self._a, self._dh_prime))
        new_nonce_hash1 = AuthKey(self.auth_key).calc_new_nonce_hash(self.new_nonce, 1)
        return DhGenOk(nonce=self.nonce, server_nonce=self.server_nonce, new_nonce_hash1=new_nonce_hash1)
