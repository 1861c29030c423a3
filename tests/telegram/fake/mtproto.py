"""The server side of MTProto 2.0 over TCP ("full" transport), for a fake Telegram.

Telethon's real client connects to this over a socket on 127.0.0.1 and runs its own
transport, encryption, message containers, acknowledgements, pings and reconnects. The
server decrypts each request with the session's auth key, parses it with Telethon's own
TL reader, hands it to a :class:`RequestHandler`, and encrypts the serialized result (or
an RPC error) back. Updates are pushed the same way.

Auth keys come one of two ways. A server given its own RSA key pair (``rsa_key``) runs
the real key exchange (:mod:`.handshake`) with any client that knows its public key.
Without one, the test side registers an auth key with :meth:`MTProtoServer.new_auth_key`
and stores it in the client's session, as if it had been generated (most tests do that:
the exchange costs a 2048-bit Diffie-Hellman per new session).
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from hashlib import sha1, sha256
from typing import Any, Protocol
from zlib import crc32

from telethon.crypto import AES
from telethon.extensions import BinaryReader
from telethon.tl import functions
from telethon.tl.core import GzipPacked, MessageContainer
from telethon.tl.tlobject import TLObject
from telethon.tl.types import MsgsAck, Pong, RpcError

from .handshake import HandshakeFailure, KeyExchange, ServerRsaKey

log = logging.getLogger("tests.telegram.fake.mtproto")

RPC_RESULT = 0xF35C6D01
BOOL_TRUE, BOOL_FALSE, VECTOR = 0x997275B5, 0xBC799737, 0x1CB5C415
# Wrappers whose result is the result of the inner query.
_WRAPPERS = (
    functions.InvokeWithLayerRequest,
    functions.InitConnectionRequest,
    functions.InvokeWithoutUpdatesRequest,
    functions.InvokeAfterMsgRequest,
)


class RpcFailure(Exception):
    """Raised by a handler to answer with ``rpc_error`` (e.g. 420 FLOOD_WAIT_3)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


@dataclass
class AuthKeyRecord:
    key: bytes
    key_id: int
    user_id: int | None = None
    """The account this key is logged in to, once a login completed."""
    data: dict[str, Any] = field(default_factory=dict)


class RequestHandler(Protocol):
    async def handle(self, conn: ServerConnection, request: TLObject) -> Any: ...


def serialize(value: Any) -> bytes:
    """A request's result as TL bytes (TL objects, booleans and vectors)."""
    if value is True:
        return struct.pack("<I", BOOL_TRUE)
    if value is False:
        return struct.pack("<I", BOOL_FALSE)
    if isinstance(value, list):
        parts = [struct.pack("<Ii", VECTOR, len(value))]
        for item in value:
            parts.append(struct.pack("<q", item) if isinstance(item, int) else serialize(item))
        return b"".join(parts)
    return bytes(value)


class ServerConnection:
    """One client TCP connection with its MTProto session."""

    def __init__(self, server: MTProtoServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.auth: AuthKeyRecord | None = None
        self.session_id = 0
        self.salt = 0
        self._send_counter = 0
        self._last_msg_id = 0
        self._seq = 0
        self.closed = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._exchange: KeyExchange | None = None

    # Transport --------------------------------------------------------------------------

    async def _read_packet(self) -> bytes:
        header = await self.reader.readexactly(8)
        length, _seq = struct.unpack("<ii", header)
        rest = await self.reader.readexactly(length - 8)
        body, checksum = rest[:-4], struct.unpack("<I", rest[-4:])[0]
        if crc32(header + body) != checksum:
            raise ConnectionError("bad transport checksum")
        return body

    async def _write_packet(self, data: bytes) -> None:
        packet = struct.pack("<ii", len(data) + 12, self._send_counter) + data
        self._send_counter += 1
        self.writer.write(packet + struct.pack("<I", crc32(packet)))
        await self.writer.drain()

    # Encryption (MTProto 2.0, server side: x = 8 when sending, 0 when receiving) ---------

    def _decrypt(self, packet: bytes) -> bytes:
        key_id = struct.unpack("<Q", packet[:8])[0]
        auth = self.server.auth_keys.get(key_id)
        if auth is None:
            raise KeyError(key_id)
        self.auth = auth
        msg_key = packet[8:24]
        aes_key, aes_iv = _calc_key(auth.key, msg_key, client=True)
        plain = AES.decrypt_ige(packet[24:], aes_key, aes_iv)
        if sha256(auth.key[88:120] + plain).digest()[8:24] != msg_key:
            raise ConnectionError("bad msg_key from client")
        return plain

    def _encrypt(self, plain: bytes) -> bytes:
        assert self.auth is not None
        padding = os.urandom(-(len(plain) + 12) % 16 + 12)
        msg_key = sha256(self.auth.key[96:128] + plain + padding).digest()[8:24]
        aes_key, aes_iv = _calc_key(self.auth.key, msg_key, client=False)
        return struct.pack("<Q", self.auth.key_id) + msg_key + AES.encrypt_ige(plain + padding, aes_key, aes_iv)

    def _new_msg_id(self) -> int:
        now = time.time()
        msg_id = (int(now) << 32) | ((int((now % 1) * 2**30) << 2) & 0xFFFFFFFC) | 1
        if msg_id <= self._last_msg_id:
            msg_id = self._last_msg_id + 4
        self._last_msg_id = msg_id
        return msg_id

    async def send_object(self, body: bytes) -> None:
        """Send one server message (an RPC result, a pong or an update)."""
        async with self._write_lock:
            if self.closed.is_set():
                raise ConnectionError("closed")
            self._seq += 1
            plain = struct.pack("<qqqii", self.salt, self.session_id, self._new_msg_id(),
                                self._seq * 2 + 1, len(body)) + body
            await self._write_packet(self._encrypt(plain))

    # Receiving ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                packet = await self._read_packet()
                if struct.unpack("<Q", packet[:8])[0] == 0:
                    await self._plain(packet)
                    continue
                try:
                    plain = self._decrypt(packet)
                except KeyError:
                    # What Telegram does for an unknown auth key: a transport error -404.
                    await self._write_packet(struct.pack("<i", -404))
                    continue
                reader = BinaryReader(plain)
                self.salt = reader.read_long()
                self.session_id = reader.read_long()
                msg_id = reader.read_long()
                reader.read_int()  # seq_no
                length = reader.read_int()
                body = reader.read(length)
                await self._process(msg_id, body)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            self.server.connections.discard(self)
            self.writer.close()

    async def _plain(self, packet: bytes) -> None:
        """An unencrypted message: a step of the auth key exchange."""
        length = struct.unpack("<i", packet[16:20])[0]
        request = BinaryReader(packet[20:20 + length]).tgread_object()
        if self.server.rsa_key is None:
            raise ConnectionError("this fake only accepts auth keys the test registered")
        if isinstance(request, functions.ReqPqMultiRequest):
            self._exchange = KeyExchange(self.server.rsa_key)
        if self._exchange is None:
            raise ConnectionError("key exchange step without req_pq_multi")
        try:
            answer = bytes(self._exchange.answer(request))
        except HandshakeFailure as e:
            self.server.handshake_failures.append(str(e))
            raise ConnectionError(str(e)) from None
        if self._exchange.auth_key is not None:
            self.server.add_auth_key(self._exchange.auth_key)
            self.server.key_exchanges.append(self._exchange.key.fingerprint)
            self._exchange = None
        await self._write_packet(struct.pack("<qqi", 0, self._new_msg_id(), len(answer)) + answer)

    async def _process(self, msg_id: int, body: bytes) -> None:
        constructor = struct.unpack("<I", body[:4])[0]
        if constructor == MessageContainer.CONSTRUCTOR_ID:
            reader = BinaryReader(body[4:])
            for _ in range(reader.read_int()):
                inner_id = reader.read_long()
                reader.read_int()
                inner = reader.read(reader.read_int())
                await self._process(inner_id, inner)
            return
        if constructor == GzipPacked.CONSTRUCTOR_ID:
            await self._process(msg_id, GzipPacked.from_reader(BinaryReader(body[4:])).data)
            return
        obj = BinaryReader(body).tgread_object()
        if isinstance(obj, MsgsAck):
            return
        if isinstance(obj, (functions.PingRequest, functions.PingDelayDisconnectRequest)):
            await self.send_object(bytes(Pong(msg_id=msg_id, ping_id=obj.ping_id)))
            return
        # Each request runs on its own so a slow one (e.g. a flood wait) blocks nothing.
        asyncio.create_task(self._answer(msg_id, obj))

    async def _answer(self, msg_id: int, request: TLObject) -> None:
        inner = request
        while isinstance(inner, _WRAPPERS):
            inner = inner.query
        try:
            result = await self.server.handler.handle(self, inner)
            payload = serialize(result)
        except RpcFailure as e:
            payload = bytes(RpcError(error_code=e.code, error_message=e.message))
        except Exception as e:  # a bug in the fake: make it visible to the test
            log.exception("Fake Telegram failed on %s", type(inner).__name__)
            payload = bytes(RpcError(error_code=500, error_message=f"FAKE_SERVER_ERROR_{type(e).__name__}"))
        try:
            await self.send_object(struct.pack("<Iq", RPC_RESULT, msg_id) + payload)
        except (ConnectionError, OSError):
            pass  # the client went away; it resends after reconnecting

    def close(self) -> None:
        """Drop the TCP connection, as a network failure would."""
        self.closed.set()
        self.writer.close()


def _calc_key(auth_key: bytes, msg_key: bytes, client: bool) -> tuple[bytes, bytes]:
    x = 0 if client else 8
    a = sha256(msg_key + auth_key[x : x + 36]).digest()
    b = sha256(auth_key[x + 40 : x + 76] + msg_key).digest()
    return a[:8] + b[8:24] + a[24:32], b[:8] + a[8:24] + b[24:32]


class MTProtoServer:
    """Listens on 127.0.0.1 and serves MTProto connections with ``handler``."""

    def __init__(self, handler: RequestHandler, rsa_key: ServerRsaKey | None = None) -> None:
        self.handler = handler
        self.rsa_key = rsa_key
        """With a key pair, clients that know its public key create auth keys here."""
        self.key_exchanges: list[int] = []
        """The key fingerprint of every completed key exchange."""
        self.handshake_failures: list[str] = []
        self.auth_keys: dict[int, AuthKeyRecord] = {}
        self.connections: set[ServerConnection] = set()
        self._server: asyncio.Server | None = None
        self.port = 0
        self.on_connect: list[Callable[[ServerConnection], Awaitable[None]]] = []

    def new_auth_key(self) -> AuthKeyRecord:
        """An auth key as if a key exchange had made it (for tests that skip the exchange)."""
        return self.add_auth_key(os.urandom(256))

    def add_auth_key(self, key: bytes) -> AuthKeyRecord:
        key_id = struct.unpack("<Q", sha1(key).digest()[12:20])[0]
        record = AuthKeyRecord(key, key_id)
        self.auth_keys[key_id] = record
        return record

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The "full" transport has no leading tag; the first packet is a normal one.
        conn = ServerConnection(self, reader, writer)
        self.connections.add(conn)
        try:
            await conn.run()
        except asyncio.CancelledError:
            pass

    def connections_of(self, user_id: int) -> list[ServerConnection]:
        return [c for c in self.connections if c.auth is not None and c.auth.user_id == user_id]

    def drop_all_connections(self) -> None:
        for conn in list(self.connections):
            conn.close()

    async def stop(self) -> None:
        self.drop_all_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
