"""The loopback network's connector: the worked example of the connector interface.

A login is a loopback user's token. Events are long-polled from the service and
acknowledged only after the core has handled them, so nothing is lost if the bridge
dies in between (the service delivers them again, and the core drops what it has seen).
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

import aiohttp

from ...core.connector import (
    Capabilities,
    Connector,
    LoginComplete,
    LoginError,
    LoginFlow,
    LoginProcess,
    LoginPrompt,
    LoginRecord,
    LoginState,
    NetworkLogin,
    OutgoingMessage,
    SendError,
    SendResult,
)
from ...core.events import (
    ChatInfo,
    MediaKind,
    MessageContent,
    RemoteChatUpdate,
    RemoteDelete,
    RemoteEdit,
    RemoteEvent,
    RemoteMedia,
    RemoteMemberChange,
    RemoteMessage,
    RemoteReaction,
    RemoteReadReceipt,
    RemoteTyping,
    Sender,
    UserInfo,
)
from ...core.ids import LoginID, NetworkID, RemoteChatID, RemoteMessageID, RemoteUserID, UserID
from ...core.text import EntityType, FormattedText
from .client import LoopbackClient, LoopbackError, media_payload
from .format import from_loopback, to_loopback

log = logging.getLogger("bridge.networks.loopback")


@dataclass
class LoopbackConfig:
    address: str = "http://127.0.0.1:29410"
    """Where the loopback service listens."""
    display_name: str = "Loopback"
    poll_timeout: float = 25.0
    """Seconds one long poll for events may wait."""


def _text(value: Any, *, empty: bool = False) -> str:
    """A string field of an event; anything else makes the event malformed."""
    if not isinstance(value, str) or not (value or empty):
        raise ValueError("expected a non-empty string")
    return value


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class LoopbackConnector(Connector):
    network = NetworkID("loopback")
    display_name = "Loopback"
    config_class = LoopbackConfig
    capabilities = Capabilities(
        edits=True,
        reactions=True,
        redactions=True,
        typing=True,
        read_receipts=True,
        replies=True,
        group_management=True,
        media=frozenset(MediaKind),
        formatting=frozenset(EntityType),
    )

    def __init__(self, config: LoopbackConfig, host: Any, network: NetworkID | None = None) -> None:
        super().__init__(config, host, network)
        self.display_name = config.display_name
        self._session: aiohttp.ClientSession | None = None

    def client(self, token: str | None = None) -> LoopbackClient:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
            )
        return LoopbackClient(self.config.address, token, self._session)

    async def start(self) -> None:
        log.info("Loopback network %s at %s", self.network, self.config.address)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    def login_flows(self) -> list[LoginFlow]:
        return [LoginFlow("token", "Token", "Log in with a loopback user's token")]

    def start_login(self, owner: UserID, flow_id: str) -> LoginProcess:
        return TokenLogin(self, owner)

    def load_login(self, record: LoginRecord) -> NetworkLogin:
        return LoopbackLogin(self, record)


class TokenLogin(LoginProcess):
    def __init__(self, connector: LoopbackConnector, owner: UserID) -> None:
        self.connector = connector
        self.owner = owner

    async def start(self) -> LoginPrompt:
        return LoginPrompt(
            f"Send the token of your {self.connector.display_name} user.", secret=True
        )

    async def submit(self, text: str) -> LoginComplete:
        token = text.strip()
        try:
            me = await self.connector.client(token).me()
        except LoopbackError as e:
            if e.status == 401:
                raise LoginError("That token is not valid.") from None
            raise LoginError(f"The network refused the login: {e.message}.") from None
        except aiohttp.ClientError as e:
            raise LoginError(f"Can't reach the network ({type(e).__name__}).") from None
        record = LoginRecord(
            network=self.connector.network,
            login_id=LoginID(me["id"]),
            owner=self.owner,
            remote_name=me.get("display_name") or me["id"],
            metadata={"token": token},
        )
        return LoginComplete(record)


class LoopbackLogin(NetworkLogin):
    def __init__(self, connector: LoopbackConnector, record: LoginRecord) -> None:
        super().__init__(record)
        self.connector = connector
        self._poller: asyncio.Task[None] | None = None

    @property
    def api(self) -> LoopbackClient:
        return self.connector.client(self.record.metadata["token"])

    async def connect(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_forever(), name=f"loopback-{self.login_id}")

    async def disconnect(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            try:
                await self._poller
            except (asyncio.CancelledError, Exception):
                pass
            self._poller = None

    async def _poll_forever(self) -> None:
        host = self.connector.host
        backoff = 1.0
        connected = False
        while True:
            try:
                events = await self.api.get_events(timeout=self.connector.config.poll_timeout)
                if not connected:
                    await host.set_login_state(self, LoginState.CONNECTED)
                    connected, backoff = True, 1.0
                if events:
                    await self._handle_batch(events)
            except asyncio.CancelledError:
                raise
            except LoopbackError as e:
                if e.status == 401:
                    await host.set_login_state(self, LoginState.BAD_CREDENTIALS, "token revoked")
                    return
                connected = await self._pause(f"network error {e.status}", backoff)
                backoff = min(backoff * 2, 30)
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                connected = await self._pause(f"can't reach the network ({type(e).__name__})", backoff)
                backoff = min(backoff * 2, 30)
            except Exception as e:
                # Not acknowledged, so the network delivers the events again; usually the
                # homeserver is away for a moment.
                log.warning("Events not handled yet (%s: %s); retrying", type(e).__name__, e)
                connected = await self._pause(f"events not handled yet ({type(e).__name__})", backoff)
                backoff = min(backoff * 2, 30)

    async def _pause(self, reason: str, backoff: float) -> bool:
        await self.connector.host.set_login_state(self, LoginState.TRANSIENT_ERROR, reason)
        # Jitter keeps many logins from reconnecting in lockstep.
        await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
        return False

    async def _handle_batch(self, events: list[dict[str, Any]]) -> None:
        futures = []
        for raw in events:
            event = self._convert(raw)
            if isinstance(event, RemoteEvent):
                futures.append(self.connector.host.queue_remote_event(self, event))
            elif isinstance(event, UserInfo):
                await self.connector.host.update_ghost(self.record.network, event)
        results = await asyncio.gather(*futures, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            # Not acknowledged: the service delivers the batch again; the core skips
            # what it already handled.
            raise failures[0]
        await self.api.ack_events(max(int(raw["seq"]) for raw in events))

    def _convert(self, raw: dict[str, Any]) -> RemoteEvent | UserInfo | None:
        """One service event as a core event; None for anything malformed or irrelevant."""
        try:
            return self._convert_unchecked(raw)
        except (KeyError, TypeError, ValueError, AttributeError):
            log.warning("Skipping a malformed loopback event of type %r", raw.get("type"))
            return None

    def _sender(self, user_id: str) -> Sender:
        return Sender(RemoteUserID(user_id), is_from_me=user_id == self.login_id)

    def _convert_unchecked(self, raw: dict[str, Any]) -> RemoteEvent | UserInfo | None:
        kind = raw["type"]
        if kind == "user_update":
            return self._user_info(raw["user"])
        chat = RemoteChatID(_text(raw["chat_id"]))
        ts = int(raw.get("ts") or 0)
        if kind == "message":
            m = raw["message"]
            return RemoteMessage(
                chat_id=chat,
                sender=self._sender(_text(m["sender"])),
                timestamp_ms=int(m.get("ts") or ts),
                message_id=RemoteMessageID(_text(m["id"])),
                content=self._content(m),
                reply_to=_optional_text(m.get("reply_to")),
                txn_id=_optional_text(m.get("txn_id")),
            )
        if kind == "edit":
            return RemoteEdit(
                chat_id=chat,
                sender=self._sender(_text(raw["sender"])),
                timestamp_ms=ts,
                message_id=RemoteMessageID(_text(raw["message_id"])),
                content=MessageContent(text=from_loopback(_text(raw["text"], empty=True), raw.get("entities"))),
            )
        if kind == "delete":
            return RemoteDelete(
                chat_id=chat, sender=self._sender(_text(raw["sender"])), timestamp_ms=ts,
                message_id=RemoteMessageID(_text(raw["message_id"])),
            )
        if kind in ("reaction", "reaction_removed"):
            return RemoteReaction(
                chat_id=chat, sender=self._sender(_text(raw["sender"])), timestamp_ms=ts,
                message_id=RemoteMessageID(_text(raw["message_id"])), emoji=_text(raw["emoji"]),
                removed=kind == "reaction_removed",
            )
        if kind == "typing":
            return RemoteTyping(
                chat_id=chat, sender=self._sender(_text(raw["sender"])), typing=bool(raw["typing"])
            )
        if kind == "read":
            return RemoteReadReceipt(
                chat_id=chat, sender=self._sender(_text(raw["sender"])),
                up_to=RemoteMessageID(_text(raw["message_id"])),
            )
        if kind in ("chat_update", "chat_created"):
            return RemoteChatUpdate(chat_id=chat, timestamp_ms=ts, info=self._chat_info(raw["chat"]))
        if kind in ("member_join", "member_leave"):
            return RemoteMemberChange(
                chat_id=chat, timestamp_ms=ts, user_id=RemoteUserID(_text(raw["user_id"])),
                joined=kind == "member_join",
            )
        return None

    def _content(self, m: dict[str, Any]) -> MessageContent:
        text = from_loopback(_optional_text(m.get("text")) or "", m.get("entities"))
        media = m.get("media")
        if not media:
            return MessageContent(text=text)
        media_id = media["media_id"]
        return MessageContent(
            text=text,
            media=RemoteMedia(
                kind=MediaKind(media["kind"]),
                mime_type=media.get("mime") or "application/octet-stream",
                file_name=media.get("name") or "file",
                size=media.get("size"),
                fetch=lambda: self._fetch(media_id),
            ),
        )

    async def _fetch(self, media_id: str) -> bytes:
        data, _ = await self.api.get_media(media_id)
        return data

    def _user_info(self, user: dict[str, Any]) -> UserInfo:
        avatar_id = user.get("avatar_media_id")
        avatar = None
        if avatar_id:
            avatar = RemoteMedia(
                kind=MediaKind.IMAGE, mime_type="image/png", file_name="avatar.png",
                size=None, fetch=lambda: self._fetch(avatar_id),
            )
        return UserInfo(
            user_id=RemoteUserID(user["id"]),
            display_name=user.get("display_name"),
            avatar=avatar,
            avatar_id=avatar_id,
            phone=user.get("phone"),
            username=user.get("username"),
        )

    def _chat_info(self, chat: dict[str, Any]) -> ChatInfo:
        avatar_id = chat.get("avatar_media_id")
        avatar = None
        if avatar_id:
            avatar = RemoteMedia(
                kind=MediaKind.IMAGE, mime_type="image/png", file_name="chat-avatar.png",
                size=None, fetch=lambda: self._fetch(avatar_id),
            )
        return ChatInfo(
            chat_id=RemoteChatID(chat["id"]),
            name=chat.get("title"),
            topic=chat.get("topic"),
            members=tuple(RemoteUserID(m) for m in chat.get("members", [])),
            is_direct=chat.get("kind") == "direct",
            avatar=avatar,
            avatar_id=avatar_id,
        )

    # NetworkLogin ------------------------------------------------------------------------

    async def get_chat_info(self, chat_id: RemoteChatID) -> ChatInfo:
        return self._chat_info(await self.api.get_chat(chat_id))

    async def get_user_info(self, user_id: str) -> UserInfo:
        if user_id == self.login_id:
            return self._user_info(await self.api.me())
        return self._user_info(await self.api.get_user(user_id))

    async def list_chats(self) -> list[ChatInfo]:
        return [self._chat_info(c) for c in await self.api.list_chats()]

    async def send_message(self, chat_id: RemoteChatID, message: OutgoingMessage) -> SendResult:
        media = None
        if message.media is not None:
            m = message.media
            media = media_payload(m.kind.value, m.file_name, m.mime_type, m.data)
        result = await self._call(
            self.api.send_message(
                chat_id,
                message.text.text if (message.text.text or media is None) else None,
                entities=to_loopback(message.text) or None,
                reply_to=message.reply_to,
                media=media,
                txn_id=message.txn_id or None,
            )
        )
        return SendResult(RemoteMessageID(result["id"]))

    async def edit_message(self, chat_id: RemoteChatID, message_id: RemoteMessageID, text: FormattedText) -> None:
        await self._call(self.api.edit_message(chat_id, message_id, text.text, entities=to_loopback(text)))

    async def delete_message(self, chat_id: RemoteChatID, message_id: RemoteMessageID) -> None:
        await self._call(self.api.delete_message(chat_id, message_id))

    async def send_reaction(self, chat_id: RemoteChatID, message_id: RemoteMessageID, emoji: str) -> None:
        await self._call(self.api.add_reaction(chat_id, message_id, emoji))

    async def remove_reaction(self, chat_id: RemoteChatID, message_id: RemoteMessageID, emoji: str) -> None:
        await self._call(self.api.remove_reaction(chat_id, message_id, emoji))

    async def set_typing(self, chat_id: RemoteChatID, typing: bool) -> None:
        await self._call(self.api.set_typing(chat_id, typing))

    async def mark_read(self, chat_id: RemoteChatID, message_id: RemoteMessageID) -> None:
        await self._call(self.api.mark_read(chat_id, message_id))

    async def create_group(self, title: str, members: list[str]) -> tuple[RemoteChatID, str | None]:
        result = await self._call(self.api.create_chat(title, members))
        return RemoteChatID(result["id"]), result.get("invite_link")

    async def logout(self) -> None:
        """A loopback token can't be revoked; the bridge just forgets it."""

    async def _call(self, request):
        """Translate the service's errors into the core's SendError."""
        try:
            return await request
        except LoopbackError as e:
            if e.status == 429:
                raise SendError("rate limited", retry_after=e.retry_after or 1.0) from None
            if e.status in (400, 403, 404):
                raise SendError(e.message, permanent=True) from None
            raise SendError(e.message) from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise SendError(f"can't reach the network ({type(e).__name__})") from None
