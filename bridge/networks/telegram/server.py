"""A configured Telegram server instead of Telegram's production data centres.

Telegram's test servers and Telegram-compatible servers speak the same MTProto, but live
at other addresses and may sign their key exchange with their own RSA key. The admin
names the data centre, address and port, and optionally that key; this module turns the
key (PEM text or a file) into what Telethon needs, applies the override to a session,
and words connection failures so that the admin can tell a wrong key from a server that
is down.

Telethon API used (the same from 1.39 to the newest 1.x): ``telethon.crypto.rsa.add_key``
(its list of known server keys, keyed by fingerprint) and ``TLObject.serialize_bytes``.
"""

from __future__ import annotations

import binascii
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import rsa
from pyasn1.error import PyAsn1Error
from telethon.crypto import rsa as telethon_rsa
from telethon.tl.tlobject import TLObject

from ...config import ConfigError

if TYPE_CHECKING:
    from .config import TelegramConfig, TelegramServerConfig
    from .session import BridgeSession

SERVER_KEY = "networks.telegram.server"
KEY_BITS = 2048
"""MTProto's key exchange encrypts one 256-byte block with the server's key."""

# Where Telethon and my.telegram.org send new clients of the production network. Sign-up
# through the bridge is refused there even when the override names one of them.
PRODUCTION_ENTRY_POINTS = frozenset({"149.154.167.50", "149.154.167.51", "2001:67c:4e8:f002::a"})

# Telethon's words (stable across 1.x) when every key exchange attempt failed.
_KEY_EXCHANGE_FAILED = "auth_key generation failed"


@dataclass(frozen=True)
class ServerPublicKey:
    """An RSA public key a server signs its key exchange with."""

    pem: str
    """PKCS#1 PEM (``-----BEGIN RSA PUBLIC KEY-----``), the form Telethon loads."""
    fingerprint: int
    """Telegram's fingerprint: the low 64 bits of SHA-1 over the TL-serialized n and e."""
    source: str
    """Where it came from (the config text or a file path), for log lines."""

    @property
    def fingerprint_hex(self) -> str:
        return format(self.fingerprint & 0xFFFF_FFFF_FFFF_FFFF, "016x")


def key_fingerprint(n: int, e: int) -> int:
    """The fingerprint Telegram servers announce for the key (n, e)."""

    def tl_bytes(value: int) -> bytes:
        return TLObject.serialize_bytes(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    return struct.unpack("<q", hashlib.sha1(tl_bytes(n) + tl_bytes(e)).digest()[-8:])[0]


def load_public_key(value: str, key: str = f"{SERVER_KEY}.public_key") -> ServerPublicKey:
    """Parse PEM text, or read it from the file ``value`` names; errors name ``key``.

    Both PEM forms are accepted: PKCS#1 (``BEGIN RSA PUBLIC KEY``, as Telegram publishes
    its keys) and SubjectPublicKeyInfo (``BEGIN PUBLIC KEY``, as OpenSSL writes them).
    """
    text = value.strip()
    source = "PEM text in the config"
    if "-----BEGIN" not in text:
        path = Path(text).expanduser()
        source = str(path)
        try:
            text = path.read_text(encoding="ascii")
        except OSError as e:
            raise ConfigError(f"'{key}': can't read the key file {path}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"'{key}': {path} is not a PEM text file") from None
    try:
        if "-----BEGIN RSA PUBLIC KEY-----" in text:
            public = rsa.PublicKey.load_pkcs1(text.encode("ascii"), "PEM")
        elif "-----BEGIN PUBLIC KEY-----" in text:
            public = rsa.PublicKey.load_pkcs1_openssl_pem(text.encode("ascii"))
        else:
            raise ValueError("no '-----BEGIN RSA PUBLIC KEY-----' or '-----BEGIN PUBLIC KEY-----' block")
    except (ValueError, TypeError, IndexError, UnicodeEncodeError, binascii.Error, PyAsn1Error) as e:
        raise ConfigError(
            f"'{key}' ({source}) is not an RSA public key in PEM form: {str(e) or type(e).__name__}"
        ) from None
    if public.n.bit_length() != KEY_BITS:
        raise ConfigError(
            f"'{key}' ({source}) is a {public.n.bit_length()}-bit key; MTProto servers use "
            f"{KEY_BITS}-bit RSA keys"
        )
    return ServerPublicKey(
        pem=public.save_pkcs1("PEM").decode("ascii"),
        fingerprint=key_fingerprint(public.n, public.e),
        source=source,
    )


def apply_server(server: TelegramServerConfig, session: BridgeSession) -> None:
    """Point ``session`` at the configured server and teach Telethon its key.

    A new session (no auth key yet) and a session of the configured data centre get the
    configured address, so a moved server is followed. A session the server moved to
    another of its data centres (``*_MIGRATE_X``) keeps the address the server gave it.
    """
    if server.key is not None:
        # Process-wide in Telethon, keyed by fingerprint: adding twice changes nothing.
        telethon_rsa.add_key(server.key.pem, old=False)
    has_key = session.auth_key is not None and bool(session.auth_key.key)
    if not has_key or session.dc_id == server.dc_id:
        session.set_dc(server.dc_id, server.address, server.port)


def describe_server(config: TelegramConfig) -> str:
    """Which Telegram the bridge talks to, for log lines and messages."""
    server = config.server
    if server is None:
        return "Telegram's production data centres"
    key = f", public key {server.key.fingerprint_hex}" if server.key is not None else ""
    return f"the Telegram server at {server.address}:{server.port} (data centre {server.dc_id}{key})"


def connection_problem(config: TelegramConfig, error: BaseException) -> str:
    """Why a connection failed, worded for the admin (no secrets, no phone numbers)."""
    server = config.server
    where = "Telegram" if server is None else f"the Telegram server at {server.address}:{server.port}"
    if _KEY_EXCHANGE_FAILED in str(error):
        # Telethon gives up after every try of the key exchange failed. With a server
        # that speaks MTProto, that means it signs with a key the bridge does not know.
        if server is None:
            return "the key exchange with Telegram failed: its public key is not one Telethon knows"
        if server.key is not None:
            return (
                f"the key exchange with {where} failed: the server does not use the configured "
                f"public key ('{SERVER_KEY}.public_key', fingerprint {server.key.fingerprint_hex})"
            )
        return (
            f"the key exchange with {where} failed: the server uses a public key the bridge does "
            f"not know; set '{SERVER_KEY}.public_key' to the server's key"
        )
    detail = str(error) or type(error).__name__
    return f"can't reach {where} ({detail})"
