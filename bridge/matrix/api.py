"""The bridge's one way of acting on the homeserver, over mautrix's appservice API.

The core calls these methods with plain dicts and ids; mautrix types stay in this package.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
from mautrix.api import Method, Path
from mautrix.appservice import AppServiceAPI, IntentAPI
from mautrix.appservice.state_store import ASStateStore
from mautrix.client.state_store import MemoryStateStore
from mautrix.errors import MatrixConnectionError, MatrixRequestError, MForbidden, MNotFound
from mautrix.types import ContentURI, EventType, RoomCreatePreset, StateEvent

from ..core.ids import EventID, RoomID, UserID
from .crypto_media import decrypt_file

if TYPE_CHECKING:
    from .crypto import BridgeCrypto

log = logging.getLogger("bridge.matrix")

BRIDGE_STATE_TYPES = ("m.bridge", "uk.half-shot.bridge")


class _StateStore(ASStateStore, MemoryStateStore):
    """Membership and power levels, learned from transactions; kept in memory."""

    def __init__(self) -> None:
        ASStateStore.__init__(self)
        MemoryStateStore.__init__(self)


class MatrixError(Exception):
    """A homeserver request failed; ``reason`` is fit for a notice."""

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


def is_transient(error: BaseException) -> bool:
    """Whether a failure talking to the homeserver may go away by itself (worth retrying):
    it is unreachable, restarting, overloaded or rate limiting."""
    if isinstance(error, MatrixError):
        return error.retryable
    if isinstance(error, (aiohttp.ClientError, asyncio.TimeoutError, OSError, MatrixConnectionError)):
        return True
    if isinstance(error, MatrixRequestError):
        return error.http_status >= 500 or error.http_status == 429
    return False


class MatrixAPI:
    def __init__(
        self,
        homeserver: str,
        domain: str,
        as_token: str,
        bot_localpart: str,
        double_puppet_token: str | None = None,
    ) -> None:
        self.homeserver = homeserver
        self.domain = domain
        self.bot_mxid = UserID(f"@{bot_localpart}:{domain}")
        self._as_token = as_token
        self._puppet_token = double_puppet_token
        self.state_store = _StateStore()
        self._session: aiohttp.ClientSession | None = None
        self._api: AppServiceAPI | None = None
        self._puppet_api: AppServiceAPI | None = None
        self._puppets: set[str] = set()
        self.crypto: BridgeCrypto | None = None
        """Set when encryption is allowed: events for encrypted rooms are encrypted."""

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100),
            headers={"User-Agent": "hub-bridge"},
        )
        self._api = AppServiceAPI(
            base_url=self.homeserver,
            bot_mxid=self.bot_mxid,
            token=self._as_token,
            log=logging.getLogger("bridge.matrix.api"),
            state_store=self.state_store,
            client_session=self._session,
        )
        if self._puppet_token:
            self._puppet_api = AppServiceAPI(
                base_url=self.homeserver,
                bot_mxid=self.bot_mxid,
                token=self._puppet_token,
                log=logging.getLogger("bridge.matrix.puppet"),
                state_store=self.state_store,
                client_session=self._session,
            )

    def can_double_puppet(self, mxid: str) -> bool:
        """Whether the bridge may act as this (real) user: double puppeting is on and the
        user is on this homeserver."""
        return self._puppet_token is not None and mxid.endswith(":" + self.domain)

    async def use_double_puppet(self, mxid: str) -> None:
        """Act as ``mxid`` through the double-puppeting registration from now on."""
        if mxid not in self._puppets:
            self._puppets.add(mxid)
            await self.state_store.registered(UserID(mxid))  # a real user: never /register

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._api = None
        self._puppet_api = None

    def intent(self, mxid: str) -> IntentAPI:
        assert self._api is not None, "MatrixAPI.start() was not called"
        if mxid == self.bot_mxid:
            return self._api.bot_intent()
        if mxid in self._puppets and self._puppet_api is not None:
            return self._puppet_api.intent(UserID(mxid))
        return self._api.intent(UserID(mxid))

    @property
    def bot(self) -> IntentAPI:
        return self.intent(self.bot_mxid)

    async def whoami_ok(self) -> None:
        """Check that the homeserver knows our as_token (it was given the registration).

        Raises :class:`MatrixError` with ``retryable=False`` when the token is refused,
        and with ``retryable=True`` when the homeserver can't be reached or fails.
        """
        try:
            await self.bot.ensure_registered()
            await self.bot.whoami()
        except MatrixRequestError as e:
            refused = e.errcode in ("M_UNKNOWN_TOKEN", "M_FORBIDDEN", "M_MISSING_TOKEN")
            raise MatrixError(f"{e.errcode}: {e.message}", retryable=not refused) from e
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise MatrixError(f"can't connect ({type(e).__name__})") from e

    async def ask_for_ping(self, appservice_id: str) -> None:
        """Have the homeserver ping the bridge (MSC2659 ``/appservice/{id}/ping``).

        A homeserver whose transaction failed (the bridge was restarting) marks the bridge
        down and retries with a growing delay; Synapse drops to-device messages (room keys)
        for it until then. A successful ping makes it retry and deliver at once.
        """
        try:
            await self.bot.api.request(
                Method.POST, f"/_matrix/client/v1/appservice/{quote(appservice_id, safe='')}/ping",
                {"transaction_id": f"hub-start-{int(asyncio.get_running_loop().time() * 1000)}"},
            )
        except Exception as e:  # older homeservers: nothing lost, they just wait
            log.info("The homeserver did not ping the bridge (%s); it delivers when it retries", e)

    async def ensure_registered(self, mxid: str) -> None:
        await self.intent(mxid).ensure_registered()

    async def set_profile(
        self, mxid: str, *, name: str | None = None, avatar_mxc: str | None = None
    ) -> None:
        intent = self.intent(mxid)
        await intent.ensure_registered()
        if name is not None:
            await intent.set_displayname(name, check_current=False)
        if avatar_mxc is not None:
            await intent.set_avatar_url(ContentURI(avatar_mxc), check_current=False)

    async def create_room(
        self,
        *,
        name: str | None,
        topic: str | None,
        avatar_mxc: str | None,
        invite: list[str],
        is_direct: bool,
        bridge_info: dict[str, Any],
        bridge_state_key: str,
        power_users: dict[str, int],
        events_default: int = 0,
    ) -> RoomID:
        """Create a private room owned by the bot, with the bridge info state events."""
        state: list[dict[str, Any]] = [
            {"type": t, "state_key": bridge_state_key, "content": bridge_info}
            for t in BRIDGE_STATE_TYPES
        ]
        if avatar_mxc:
            state.append({"type": "m.room.avatar", "state_key": "", "content": {"url": avatar_mxc}})
        encryption = self.crypto.new_room_encryption() if self.crypto else None
        if encryption:
            state.append({"type": "m.room.encryption", "state_key": "", "content": encryption})
        power = {
            # The bot creates the room, so it has full power already (in room version 12
            # creators may not even be listed).
            "users": power_users,
            "events_default": events_default,
            "state_default": 50,
            "events": {t: 100 for t in BRIDGE_STATE_TYPES},
        }
        room_id = await self.bot.create_room(
            preset=RoomCreatePreset.PRIVATE,
            name=name,
            topic=topic,
            is_direct=is_direct,
            invitees=invite,
            initial_state=state,
            power_level_override=power,
        )
        await self.state_store.joined(room_id, self.bot_mxid)
        if encryption and self.crypto:
            await self.crypto.rooms.remember_encrypted(room_id, encryption)
        return RoomID(room_id)

    async def join(self, room_id: str, mxid: str) -> None:
        await self.intent(mxid).ensure_joined(room_id)

    async def invite(self, room_id: str, mxid: str) -> None:
        try:
            await self.bot.invite_user(room_id, UserID(mxid))
        except MatrixRequestError as e:
            # Already in the room, or already invited: both are fine.
            if "already" not in (e.message or "").lower():
                raise

    async def leave(self, room_id: str, mxid: str) -> None:
        await self.intent(mxid).leave_room(room_id)

    async def cache_state(self, event: dict[str, Any]) -> None:
        """Remember a state event from a transaction (memberships, power levels)."""
        try:
            await self.state_store.update_state(StateEvent.deserialize(event))
        except Exception:
            log.debug("Could not cache state event %s", event.get("event_id"), exc_info=True)

    async def is_member(self, room_id: str, mxid: str) -> bool:
        return await self.state_store.is_joined(room_id, UserID(mxid))

    async def send(
        self,
        room_id: str,
        sender: str,
        content: dict[str, Any],
        *,
        txn_id: str | None = None,
        event_type: str = "m.room.message",
        timestamp_ms: int | None = None,
    ) -> EventID:
        """Send an event as ``sender``; the same ``txn_id`` never creates a second event."""
        intent = self.intent(sender)
        kwargs: dict[str, Any] = {}
        if timestamp_ms:
            kwargs["timestamp"] = timestamp_ms
        try:
            await intent.ensure_joined(room_id)
            if self.crypto is not None:
                event_type, content = await self.crypto.encrypt_if_needed(
                    room_id, sender, event_type, content
                )
            return EventID(
                await intent.send_message_event(
                    room_id, EventType.find(event_type), content, txn_id=txn_id, **kwargs
                )
            )
        except MForbidden as e:
            reason = f"the homeserver refused the message: {e.message}"
            raise MatrixError(reason, retryable=False) from e
        except MatrixRequestError as e:
            raise MatrixError(f"the homeserver failed: {e.message}") from e

    async def send_state(
        self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> None:
        kind = EventType.find(event_type, EventType.Class.STATE)
        await self.bot.send_state_event(room_id, kind, content, state_key=state_key)

    async def redact(
        self, room_id: str, sender: str, event_id: str, *, extra: dict[str, Any] | None = None
    ) -> None:
        try:
            await self.intent(sender).redact(room_id, event_id, extra_content=extra)
        except MNotFound:
            log.debug("Event %s to redact is already gone", event_id)

    async def notice(
        self, room_id: str, text: str, *, html: str | None = None, reply_to: str | None = None
    ) -> EventID:
        content: dict[str, Any] = {"msgtype": "m.notice", "body": text}
        if html:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = html
        if reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        return await self.send(room_id, self.bot_mxid, content)

    async def set_typing(self, room_id: str, mxid: str, typing: bool) -> None:
        await self.intent(mxid).set_typing(room_id, timeout=30_000 if typing else 0)

    async def mark_read(self, room_id: str, mxid: str, event_id: str) -> None:
        await self.intent(mxid).mark_read(room_id, event_id)

    async def set_room_name(self, room_id: str, name: str) -> None:
        await self.bot.set_room_name(room_id, name)

    async def set_room_topic(self, room_id: str, topic: str) -> None:
        await self.bot.set_room_topic(room_id, topic)

    async def set_room_avatar(self, room_id: str, mxc: str) -> None:
        await self.bot.set_room_avatar(room_id, ContentURI(mxc))

    async def upload(
        self, data: bytes, mime_type: str, file_name: str, *, room_id: str | None = None
    ) -> str:
        """Upload media; for an encrypted ``room_id`` only ciphertext (the key goes in the event)."""
        if room_id is not None and self.crypto is not None:
            if await self.crypto.rooms.is_encrypted(RoomID(room_id)):
                ciphertext, file_info = await self.crypto.uploads.encrypt(data)
                mxc = str(await self.bot.upload_media(ciphertext, mime_type="application/octet-stream"))
                self.crypto.uploads.remember(mxc, file_info)
                return mxc
        return str(await self.bot.upload_media(data, mime_type=mime_type, filename=file_name))

    async def download(self, mxc: str, *, encrypted_file: dict[str, Any] | None = None) -> bytes:
        """Download media; an encrypted attachment (its ``file`` object given) is decrypted."""
        data = await self.bot.download_media(ContentURI(mxc))
        return await decrypt_file(data, encrypted_file) if encrypted_file is not None else data

    async def find_recent_event(
        self, room_id: str, key: str, value: str, limit: int = 200
    ) -> EventID | None:
        """The newest of the room's last ``limit`` events whose content has ``key: value``."""
        resp = await self.bot.api.request(
            Method.GET,
            Path.v3.rooms[room_id].messages,
            query_params={"dir": "b", "limit": str(limit)},
        )
        for event in resp.get("chunk", []):
            if (event.get("content") or {}).get(key) == value:
                return EventID(event["event_id"])
        return None

    async def get_event(self, room_id: str, event_id: str) -> dict[str, Any]:
        evt = await self.bot.get_event(room_id, event_id)
        return evt.serialize()

    async def can_moderate(self, room_id: str, mxid: str) -> bool:
        """Whether ``mxid`` may change the room's settings (state events).

        Room creators count as moderators: in room version 12 they hold unlimited power
        without being listed in the power levels.
        """
        create = await self.bot.get_state_event(room_id, EventType.ROOM_CREATE, format="event")
        content = create.content.serialize() if hasattr(create.content, "serialize") else {}
        version = str(content.get("room_version", "1"))
        creators = {str(create.sender), *content.get("additional_creators", [])}
        if version in ("12",) or version.startswith("org.matrix.hydra"):
            if mxid in creators:
                return True
        levels = await self.bot.get_power_levels(room_id, ignore_cache=True)
        return levels.get_user_level(UserID(mxid)) >= levels.state_default

    async def joined_members(self, room_id: str) -> list[str]:
        return [str(m) for m in await self.bot.get_joined_members(room_id)]
