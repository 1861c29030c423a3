"""Linking a remote chat to a Matrix room: the one implementation behind the bot's
``link`` command and the provisioning API's ``POST /portals``.

Linking records a relay portal (``PortalRow.relay``) whose room is the given room: the
chat's messages appear there, and the room's messages reach the chat, relayed through the
linking user's login for people who have none (hub rooms). What is checked first:

* the user has a connected login on the network that can see the chat;
* the bridge bot is in the room, or can join it (invited first);
* the user is in the room and may moderate it (``MatrixAPI.can_moderate``): room
  moderators decide what is bridged into their room.

A chat that still has a room of its own (a plain portal, made on its first message)
moves into the linked room, and its old room is told. A chat linked to another hub room
must be unlinked there first. Linking a chat to the room it is linked to changes nothing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from ..db.portals import PortalRow
from .connector import LoginState, NetworkLogin
from .context import BridgeContext, now_ms
from .events import ChatInfo
from .ids import LoginID, PortalKey, RemoteChatID, RoomID

log = logging.getLogger("bridge.core.linking")

# Printable ASCII, then an optional server name (room version 12 ids have none). The
# provisioning API's OpenAPI document has the same pattern.
_ROOM_ID = re.compile(r"^![!-9;-~]+(:[A-Za-z0-9.:\[\]-]+)?$")


class LinkError(Exception):
    """Why the chat can't be linked; phrased for the user."""

    def __init__(self, reason: str, *, code: str = "refused") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        """``bad_room_id``, ``unknown_network``, ``no_login``, ``chat_not_visible``,
        ``room_not_joinable``, ``not_in_room``, ``no_power`` or ``already_linked``."""


@dataclass(frozen=True)
class LinkResult:
    portal: PortalRow
    info: ChatInfo
    network_name: str
    created: bool
    """False when the chat was already linked to this room (nothing changed)."""
    moved_from: RoomID | None = None
    """The chat's own room it left, if it had one."""


async def link_chat(
    ctx: BridgeContext,
    user_id: str,
    network: str,
    chat_id: str,
    room_id: str,
    *,
    login_id: str | None = None,
    room_checked: bool = False,
) -> LinkResult:
    """Link ``network``/``chat_id`` to ``room_id`` for ``user_id``; raise :class:`LinkError`.

    ``room_checked``: the caller knows the bot is in the room and the user may moderate
    it (the ``link`` command, sent in that room, checks it first).
    """
    if len(room_id) > 255 or not _ROOM_ID.match(room_id):
        raise LinkError(f"{room_id!r} is not a Matrix room id", code="bad_room_id")
    try:
        connector = ctx.logins.connector(network)
    except KeyError as e:
        raise LinkError(str(e.args[0]), code="unknown_network") from None
    prefix = ctx.config.bridge.command_prefix
    logins = [
        login for login in ctx.logins.of_user(user_id, network)
        if login.record.state == LoginState.CONNECTED and login_id in (None, login.login_id)
    ]
    if not logins:
        raise LinkError(
            f"Log in to {connector.display_name} first: '{prefix} login {network}' in your "
            "room with the bot.",
            code="no_login",
        )
    login, info = await _login_that_sees(logins, RemoteChatID(chat_id))
    if login is None or info is None:
        raise LinkError(
            f"None of your {connector.display_name} logins can see the chat {chat_id}.",
            code="chat_not_visible",
        )
    if not room_checked:
        await _check_room(ctx, user_id, room_id)
    key = PortalKey(connector.network, RemoteChatID(chat_id))
    results: list[LinkResult] = []

    async def record() -> None:  # in the chat's queue: no portal is made for it meanwhile
        results.append(await _record(ctx, key, RoomID(room_id), login, info, connector.display_name))

    await ctx.queues.submit(key, record)
    result = results[0]
    if result.created:
        log.info("Linked %s to %s for %s%s", key, room_id, user_id,
                 f" (moved from {result.moved_from})" if result.moved_from else "")
    return result


async def _login_that_sees(
    logins: list[NetworkLogin], chat_id: RemoteChatID
) -> tuple[NetworkLogin | None, ChatInfo | None]:
    for login in logins:
        try:
            return login, await login.get_chat_info(chat_id)
        except Exception as e:  # not a member, unknown chat, network down: try the next
            log.debug("Login %s can't see %s: %s", login.login_id, chat_id, type(e).__name__)
    return None, None


async def _check_room(ctx: BridgeContext, user_id: str, room_id: str) -> None:
    bot = ctx.matrix.bot_mxid
    try:
        await ctx.matrix.join(room_id, bot)
        members = await ctx.matrix.joined_members(room_id)
    except Exception as e:
        log.info("The bot could not join %s to link it: %s", room_id, e)
        raise LinkError(
            f"The bridge bot can't join {room_id}: invite {bot} to the room first.",
            code="room_not_joinable",
        ) from None
    if user_id not in members:
        raise LinkError(f"You are not in the room {room_id}.", code="not_in_room")
    try:
        allowed = await ctx.matrix.can_moderate(room_id, user_id)
    except Exception:
        log.warning("Could not read the power levels of %s", room_id, exc_info=True)
        allowed = False
    if not allowed:
        raise LinkError(
            "Only the room's moderators can change which chats are linked to it.", code="no_power"
        )


async def _record(
    ctx: BridgeContext, key: PortalKey, room_id: RoomID, login: NetworkLogin, info: ChatInfo, name: str
) -> LinkResult:
    existing = await ctx.db.portals.get(key)
    moved_from = None
    if existing is not None and existing.room_id is not None:
        if existing.room_id == room_id and existing.relay:
            return LinkResult(existing, info, name, created=False)
        if existing.room_id != room_id:
            if existing.relay:
                raise LinkError(
                    "That chat is already linked to another room; unlink it there first.",
                    code="already_linked",
                )
            moved_from = existing.room_id
            # It had a room of its own (a plain portal): it moves, and its old room is told.
            await ctx.matrix.notice(
                existing.room_id, "This chat is now bridged into another room; this room "
                "no longer receives its messages.",
            )
    portal = PortalRow(
        key=key, room_id=room_id, login_id=LoginID(login.login_id), name=info.name,
        topic=info.topic, is_direct=info.is_direct, created_at=now_ms(), relay=True,
    )
    await ctx.db.portals.put(portal)
    for member in info.members:
        if member != login.login_id:
            ghost = await ctx.ghosts.ensure(login, member)
            await ctx.matrix.join(room_id, ghost)
    await _mark_bridged(ctx, portal, info, name)
    await ctx.hub.announce_link(portal, login)
    return LinkResult(portal, info, name, created=True, moved_from=moved_from)


def bridge_info_content(ctx: BridgeContext, key: PortalKey, info: ChatInfo, network_name: str) -> dict[str, Any]:
    """The ``m.bridge`` content that tells clients (and people) the room is bridged."""
    return {
        "bridgebot": ctx.matrix.bot_mxid,
        "protocol": {"id": key.network, "displayname": network_name},
        "channel": {"id": key.chat_id, "displayname": info.name or ""},
    }


async def _mark_bridged(ctx: BridgeContext, portal: PortalRow, info: ChatInfo, network_name: str) -> None:
    """``m.bridge`` state for the linked chat, where the bot has the power to set it."""
    assert portal.room_id is not None
    content = bridge_info_content(ctx, portal.key, info, network_name)
    for event_type in ("m.bridge", "uk.half-shot.bridge"):
        try:
            await ctx.matrix.send_state(
                portal.room_id, event_type, content, state_key=f"{portal.key.network}/{portal.key.chat_id}"
            )
        except Exception as e:  # the bot may lack the power; the link notices still tell people
            log.info("Could not set %s in %s: %s", event_type, portal.room_id, type(e).__name__)
