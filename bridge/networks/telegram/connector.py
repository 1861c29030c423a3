"""The Telegram connector: Telethon-based puppeting logins.

Each login is one Telegram account with its own Telethon client. Updates are converted
in order (:mod:`.updates`) and queued into the core; the stored update state advances only
behind what the core has handled (:class:`.updates.CheckpointTracker`), so a crash or a
restart is followed by ``updates.getDifference`` from a state that loses nothing, and the
core drops what it has already bridged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import re
import struct
from typing import Any

from telethon import errors, events, functions, utils
from telethon.tl import types as tl

from ...core.connector import (
    Capabilities,
    ChatChange,
    Connector,
    LoginFlow,
    LoginProcess,
    LoginRecord,
    LoginState,
    NetworkLogin,
    OutgoingMessage,
    SendError,
    SendResult,
)
from ...core.events import ChatInfo, MediaKind, RemoteChatUpdate, RemoteEvent, UserInfo
from ...core.ids import NetworkID, RemoteChatID, RemoteMessageID, UserID
from ...core.text import EntityType, FormattedText
from . import chats, group_admin
from .client import BridgeTelegramClient, Checkpoint, ClientFactory, build_client
from .config import TelegramConfig
from .format import to_telegram
from .ids import GENERAL_TOPIC, ChatRef, message_id, parse_chat_id
from .login import PhoneLogin, QRLogin
from .media import input_media
from .server import connection_problem, describe_server
from .session import BridgeSession
from .updates import CheckpointTracker, UpdateConverter

log = logging.getLogger("bridge.networks.telegram")

_UNAUTHORIZED = (errors.UnauthorizedError, errors.AuthKeyError)
_UPDATE_USER = tuple(t for t in (getattr(tl, "UpdateUser", None), tl.UpdateUserName,
                                 getattr(tl, "UpdateUserPhoto", None)) if t is not None)


def _error_name(error: errors.RPCError) -> str:
    """Telegram's own name for an error (CHAT_ADMIN_REQUIRED). Telethon keeps it only for
    errors it doesn't know; a known one has a class named after it instead."""
    if type(error).__module__.endswith("rpcerrorlist"):
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__.removesuffix("Error")).upper()
    return error.message or type(error).__name__


class TelegramConnector(Connector):
    network = NetworkID("telegram")
    display_name = "Telegram"
    config_class = TelegramConfig
    capabilities = Capabilities(
        edits=True,
        reactions=True,
        redactions=True,
        typing=True,
        read_receipts=True,
        replies=True,
        backfill=True,
        group_management=True,
        media=frozenset(MediaKind),
        formatting=frozenset(EntityType),
        max_text_length=4096,
    )

    def __init__(self, config: TelegramConfig, host: Any, network: NetworkID | None = None) -> None:
        super().__init__(config, host, network)
        self.display_name = config.display_name
        self.client_factory: ClientFactory = build_client
        """How clients are made; tests point this at a local fake Telegram."""

    async def start(self) -> None:
        """Say which Telegram is used; warn (without failing) when a configured server
        does not answer, so the log explains the failed logins that will follow."""
        server = self.config.server
        if server is None:
            log.info("Telegram: using %s", describe_server(self.config))
            return
        log.info("Telegram: using %s instead of the production data centres; key: %s; sign-up: %s",
                 describe_server(self.config),
                 server.key.source if server.key is not None else "Telethon's built-in keys",
                 "allowed" if self.config.sign_up_allowed else "off")
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                _reader, writer = await asyncio.open_connection(server.address, server.port)
        except (OSError, TimeoutError) as e:
            log.warning("Telegram: %s; logins fail until it answers", connection_problem(self.config, e))
            return
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    def login_flows(self) -> list[LoginFlow]:
        return [
            LoginFlow("phone", "Phone number", "Log in with your phone number and a code Telegram sends you"),
            LoginFlow("qr", "QR code", "Scan a QR code with a Telegram app where you are logged in"),
        ]

    def start_login(self, owner: UserID, flow_id: str) -> LoginProcess:
        return QRLogin(self, owner) if flow_id == "qr" else PhoneLogin(self, owner)

    def load_login(self, record: LoginRecord) -> NetworkLogin:
        return TelegramLogin(self, record)


class TelegramLogin(NetworkLogin):
    def __init__(self, connector: TelegramConnector, record: LoginRecord) -> None:
        super().__init__(record)
        self.connector = connector
        self.host = connector.host
        self.self_id = int(record.login_id)
        self.session = BridgeSession(record.metadata)
        self.client: BridgeTelegramClient | None = None
        self._runner: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.converter = UpdateConverter(
            str(record.login_id),
            self.self_id,
            double_puppet=connector.config.double_puppet,
            share_contact_numbers=connector.config.share_contact_numbers,
            fetch_media=self._download,
            resolve_username=self._resolve_username,
        )
        self.tracker = CheckpointTracker(self._save_checkpoint)

    # Connection -----------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name=f"telegram-{self.login_id}")

    async def disconnect(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except (asyncio.CancelledError, Exception):
                pass
            self._runner = None
        await self._close_client()
        for task in list(self._background):
            task.cancel()
        await self.tracker.drain()

    async def _close_client(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            try:
                await client.disconnect()
            except Exception:
                log.debug("Telethon disconnect failed", exc_info=True)

    async def _run(self) -> None:
        backoff = 1.0
        while True:
            try:
                client = self.connector.client_factory(self.connector.config, self.session)
                client.add_event_handler(self._on_update, events.Raw())
                client.on_reconnect = self._on_reconnect
                self.client = client
                await client.connect()
                if not await client.is_user_authorized():
                    await self._logged_out("the Telegram session was revoked or has expired")
                    return
                await self.host.set_login_state(self, LoginState.CONNECTED)
                backoff = 1.0
                await client.run_until_disconnected()
                raise ConnectionError("disconnected from Telegram")
            except asyncio.CancelledError:
                raise
            except _UNAUTHORIZED:
                await self._logged_out("the Telegram session was revoked or has expired")
                return
            except Exception as e:
                reason = (connection_problem(self.connector.config, e) if isinstance(e, OSError)
                          else f"can't reach Telegram ({type(e).__name__})")
                log.warning("Telegram login %s: %s", self.login_id, reason)
                await self._close_client()
                await self.host.set_login_state(self, LoginState.TRANSIENT_ERROR, reason)
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, 60)

    async def _logged_out(self, reason: str) -> None:
        await self._close_client()
        await self.host.set_login_state(self, LoginState.BAD_CREDENTIALS, reason)

    def _on_reconnect(self) -> None:
        self._spawn(self.host.set_login_state(self, LoginState.CONNECTED))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # Incoming updates -----------------------------------------------------------------------

    async def _on_update(self, update: Any) -> None:
        """Called by Telethon for every update, in order; must not wait for anything."""
        entities = getattr(update, "_entities", None) or {}
        if entities:
            users = [e for e in entities.values() if isinstance(e, tl.User)]
            others = [e for e in entities.values() if not isinstance(e, tl.User)]
            self.session.process_entities(tl.contacts.ResolvedPeer(None, others, users))
        try:
            converted = self.converter.convert(update)
        except Exception:
            log.exception("Could not convert a Telegram %s", type(update).__name__)
            converted = []
        for event in converted:
            self.tracker.add(self.host.queue_remote_event(self, event))
        self._side_effects(update)
        checkpoint = getattr(update, "_bridge_checkpoint", None)
        if checkpoint is not None:
            self.tracker.checkpoint(checkpoint)

    def _side_effects(self, update: Any) -> None:
        """Profile and photo changes, fetched in the background (they carry no history)."""
        if _UPDATE_USER and isinstance(update, _UPDATE_USER):
            self._spawn(self._refresh_user(str(update.user_id)))
        message = getattr(update, "message", None)
        if isinstance(message, tl.MessageService) and isinstance(
            message.action, (tl.MessageActionChatEditPhoto, tl.MessageActionChatDeletePhoto)
        ):
            chat = self.converter.chat_of(message, getattr(update, "_entities", None) or {}).base
            self._spawn(self._refresh_chat(chat))

    async def _refresh_user(self, remote_id: str) -> None:
        try:
            await self.host.update_ghost(self.record.network, await self.get_user_info(remote_id))
        except Exception:
            log.info("Could not refresh a Telegram profile", exc_info=True)

    async def _refresh_chat(self, chat: ChatRef) -> None:
        try:
            info = await self.get_chat_info(chat.chat_id)
            await self.host.queue_remote_event(self, RemoteChatUpdate(chat_id=chat.chat_id, info=info))
        except Exception:
            log.info("Could not refresh a Telegram chat", exc_info=True)

    async def _save_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.session.set_checkpoint(*checkpoint)
        self.record.metadata = self.session.export(self.self_id)
        await self.host.save_login(self)

    def _resolve_username(self, username: str) -> str | None:
        try:
            row = self.session.get_entity_rows_by_username(username)
        except Exception:
            return None
        return str(row[0]) if row and row[0] > 0 else None

    async def _download(self, message: tl.Message) -> bytes:
        data = await self._retry_flood(lambda: self._require_client().download_media(message, file=bytes))
        if not isinstance(data, bytes):
            raise LookupError("Telegram has no file for this message")
        return data

    # Calls ------------------------------------------------------------------------------------

    def _require_client(self) -> BridgeTelegramClient:
        if self.client is None or not self.client.is_connected():
            raise SendError("not connected to Telegram")
        return self.client

    async def _retry_flood(self, call: Any, attempts: int = 5) -> Any:
        """For reads (downloads, chat details): wait out flood limits here."""
        for attempt in range(attempts):
            try:
                return await call()
            except errors.FloodWaitError as e:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(min(e.seconds, 300))
        raise AssertionError("unreachable")

    async def _call(self, request: Any) -> Any:
        """Send a request that changes something; errors become the core's SendError."""
        client = self._require_client()
        try:
            return await client(request)
        except errors.FloodWaitError as e:
            raise SendError(f"Telegram asks to wait {e.seconds} s", retry_after=float(e.seconds)) from None
        except _UNAUTHORIZED:
            self._spawn(self._logged_out("the Telegram session was revoked or has expired"))
            raise SendError("the Telegram session was revoked or has expired", permanent=True) from None
        except errors.RPCError as e:
            permanent = e.code in (400, 403, 406)
            raise SendError(f"Telegram refused it ({_error_name(e)})", permanent=permanent) from None
        except (OSError, ConnectionError) as e:
            raise SendError(f"can't reach Telegram ({type(e).__name__})") from None

    async def _input_peer(self, chat: ChatRef) -> Any:
        client = self._require_client()
        try:
            return await client.get_input_entity(chat.peer)
        except ValueError:
            raise SendError("Telegram doesn't know this chat for this account", permanent=True) from None

    def _input_user(self, remote_id: str) -> tl.TypeInputUser | None:
        try:
            peer = self.session.get_input_entity(int(remote_id))
            return utils.get_input_user(peer)
        except (ValueError, TypeError):
            return None

    @staticmethod
    def _random_id(txn_id: str) -> int:
        """Stable per Matrix event: Telegram refuses a repeated send with the same id."""
        if not txn_id:
            return random.randrange(-(2**63), 2**63)
        return struct.unpack("<q", hashlib.sha256(txn_id.encode()).digest()[:8])[0]

    @staticmethod
    def _reply_to(chat: ChatRef, reply: RemoteMessageID | None) -> tl.InputReplyToMessage | None:
        topic = chat.topic_id if chat.topic_id and chat.topic_id != GENERAL_TOPIC else None
        if reply is not None:
            return tl.InputReplyToMessage(reply_to_msg_id=int(reply), top_msg_id=topic)
        if topic is not None:
            return tl.InputReplyToMessage(reply_to_msg_id=topic)
        return None

    @staticmethod
    def _sent(result: Any, random_id: int) -> SendResult:
        if isinstance(result, tl.UpdateShortSentMessage):
            return SendResult(message_id(result.id), int(result.date.timestamp() * 1000))
        for update in getattr(result, "updates", []):
            if isinstance(update, tl.UpdateMessageID) and update.random_id == random_id:
                return SendResult(message_id(update.id))
        for update in getattr(result, "updates", []):
            if isinstance(update, (tl.UpdateNewMessage, tl.UpdateNewChannelMessage)):
                msg = update.message
                return SendResult(message_id(msg.id), int(msg.date.timestamp() * 1000))
        raise SendError("Telegram did not say which message was sent")

    # NetworkLogin -----------------------------------------------------------------------------

    async def send_message(self, chat_id: RemoteChatID, message: OutgoingMessage) -> SendResult:
        chat = parse_chat_id(chat_id)
        peer = await self._input_peer(chat)
        text, entities = to_telegram(message.text, input_user=self._input_user)
        random_id = self._random_id(message.txn_id)
        reply_to = self._reply_to(chat, message.reply_to)
        if message.media is not None:
            client = self._require_client()
            try:
                uploaded = await client.upload_file(message.media.data, file_name=message.media.file_name)
            except errors.FloodWaitError as e:
                raise SendError("Telegram asks to wait", retry_after=float(e.seconds)) from None
            request: Any = functions.messages.SendMediaRequest(
                peer=peer, media=input_media(message.media, uploaded), message=text,
                random_id=random_id, entities=entities or None, reply_to=reply_to,
            )
        else:
            request = functions.messages.SendMessageRequest(
                peer=peer, message=text, random_id=random_id, entities=entities or None,
                reply_to=reply_to,
            )
        return self._sent(await self._call(request), random_id)

    async def edit_message(self, chat_id: RemoteChatID, message_id: RemoteMessageID, text: FormattedText) -> None:
        chat = parse_chat_id(chat_id)
        body, entities = to_telegram(text, input_user=self._input_user)
        request = functions.messages.EditMessageRequest(
            peer=await self._input_peer(chat), id=int(message_id), message=body, entities=entities or None,
        )
        try:
            await self._call(request)
        except SendError as e:
            if "MESSAGE_NOT_MODIFIED" not in e.reason:
                raise

    async def delete_message(self, chat_id: RemoteChatID, message_id: RemoteMessageID) -> None:
        chat = parse_chat_id(chat_id)
        peer = await self._input_peer(chat)
        if chat.kind == "channel":
            await self._call(functions.channels.DeleteMessagesRequest(peer, [int(message_id)]))
        else:
            await self._call(functions.messages.DeleteMessagesRequest([int(message_id)], revoke=True))

    async def send_reaction(self, chat_id: RemoteChatID, message_id: RemoteMessageID, emoji: str) -> None:
        peer = await self._input_peer(parse_chat_id(chat_id))
        await self._call(functions.messages.SendReactionRequest(
            peer=peer, msg_id=int(message_id), reaction=[tl.ReactionEmoji(emoticon=emoji)],
        ))

    async def remove_reaction(self, chat_id: RemoteChatID, message_id: RemoteMessageID, emoji: str) -> None:
        # Telegram keeps one reaction per person on most accounts: removing means none.
        peer = await self._input_peer(parse_chat_id(chat_id))
        await self._call(functions.messages.SendReactionRequest(peer=peer, msg_id=int(message_id), reaction=[]))

    async def set_typing(self, chat_id: RemoteChatID, typing: bool) -> None:
        chat = parse_chat_id(chat_id)
        action = tl.SendMessageTypingAction() if typing else tl.SendMessageCancelAction()
        topic = chat.topic_id if chat.topic_id and chat.topic_id != GENERAL_TOPIC else None
        await self._call(functions.messages.SetTypingRequest(
            peer=await self._input_peer(chat), action=action, top_msg_id=topic,
        ))

    async def mark_read(self, chat_id: RemoteChatID, message_id: RemoteMessageID) -> None:
        chat = parse_chat_id(chat_id)
        peer = await self._input_peer(chat)
        if chat.kind == "channel":
            await self._call(functions.channels.ReadHistoryRequest(peer, max_id=int(message_id)))
        else:
            await self._call(functions.messages.ReadHistoryRequest(peer, max_id=int(message_id)))

    async def update_chat(self, chat_id: RemoteChatID, change: ChatChange) -> None:
        chat = parse_chat_id(chat_id)
        client = self._require_client()

        async def upload(data: bytes, file_name: str) -> Any:
            try:
                return await client.upload_file(data, file_name=file_name)
            except errors.FloodWaitError as e:
                raise SendError("Telegram asks to wait", retry_after=float(e.seconds)) from None

        peer = await self._input_peer(chat.base) if chat.kind != "dm" else None
        await group_admin.apply_change(chat, change, call=self._call, input_peer=peer,
                                       input_user=self._input_user, upload=upload)

    async def get_chat_info(self, chat_id: RemoteChatID) -> ChatInfo:
        client = self._require_client()
        return await self._retry_flood(lambda: chats.get_chat_info(client, parse_chat_id(chat_id), self.self_id))

    async def get_user_info(self, user_id: str) -> UserInfo:
        client = self._require_client()
        return await self._retry_flood(lambda: chats.get_user_info(client, user_id))

    async def list_chats(self) -> list[ChatInfo]:
        client = self._require_client()
        return await chats.list_chats(client, str(self.login_id), self.self_id,
                                      self.connector.config.sync_chat_limit)

    async def fetch_history(self, chat_id: RemoteChatID, limit: int) -> list[RemoteEvent]:
        chat = parse_chat_id(chat_id)
        client = self._require_client()
        entity = await client.get_entity(chat.peer)
        topic = chat.topic_id if chat.topic_id and chat.topic_id != GENERAL_TOPIC else None
        messages = await self._retry_flood(lambda: client.get_messages(entity, limit=limit, reply_to=topic))
        context = {utils.get_peer_id(entity): entity}
        out: list[RemoteEvent] = []
        for msg in reversed(list(messages)):
            out.extend(e for e in self.converter.message(msg, context) if e.chat_id == chat.chat_id)
        return out

    async def logout(self) -> None:
        client = self.client
        if client is not None and client.is_connected():
            try:
                await client.log_out()
            except Exception:
                log.info("Telegram logout request failed; forgetting the session anyway")
        self.record.metadata = {}
