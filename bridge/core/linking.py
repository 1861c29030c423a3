"""Linking a remote chat to an existing Matrix room (a hub room, or any room).

Used by the provisioning API and meant for the bot's ``link`` command too. Linking
records a portal whose room is the given room; from then on the chat's messages appear
there and the room's messages go to the chat, like any portal. What is checked first:

* the user has a login on the network that can see the chat (its chat info loads);
* the bridge bot is in the room, or can join it (the user invites it first);
* the user is in the room with power level 50 or more (or is a bridge admin): room
  moderators decide what is bridged into their room.

A chat that has a portal room already (chats get one on their first message) moves to
the new room when that room was made for the user's own login, or the user is in it, or
is a bridge admin; the old room is told so and is no longer bridged.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from ..db.portals import PortalRow
from .connector import NetworkLogin
from .context import BridgeContext, now_ms
from .events import ChatInfo
from .ids import LoginID, NetworkID, PortalKey, RemoteChatID, RoomID

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
        """``unknown_network``, ``no_login``, ``chat_not_visible``, ``room_not_joinable``,
        ``not_in_room``, ``no_power``, ``already_linked``, ``bad_room_id`` or ``refused``."""


@dataclass(frozen=True)
class LinkResult:
    portal: PortalRow
    created: bool
    """False when the chat was already linked to this room (linking is idempotent)."""
    moved_from: RoomID | None = None
    """The room the chat was bridged to before, if it moved."""


async def link_chat(
    ctx: BridgeContext,
    user_id: str,
    network: str,
    chat_id: str,
    room_id: str,
    *,
    login_id: str | None = None,
) -> LinkResult:
    """Link ``network``/``chat_id`` to ``room_id`` for ``user_id``; raise :class:`LinkError`."""
    if len(room_id) > 255 or not _ROOM_ID.match(room_id):
        raise LinkError(f"{room_id!r} is not a Matrix room id", code="bad_room_id")
    try:
        connector = ctx.logins.connector(network)
    except KeyError as e:
        raise LinkError(str(e.args[0]), code="unknown_network") from None
    logins = [
        login for login in ctx.logins.of_user(user_id, network)
        if login_id is None or login.login_id == login_id
    ]
    if not logins:
        raise LinkError(
            f"you have no {connector.display_name} login"
            + (f" {login_id!r}" if login_id else ""),
            code="no_login",
        )
    login, info = await _login_that_sees(logins, RemoteChatID(chat_id))
    if login is None or info is None:
        raise LinkError(
            f"none of your {connector.display_name} logins can see the chat {chat_id!r}",
            code="chat_not_visible",
        )
    await _check_room(ctx, user_id, room_id)
    key = PortalKey(NetworkID(network), RemoteChatID(chat_id))
    results: list[LinkResult] = []

    async def record() -> None:  # in the chat's queue: no portal is created meanwhile
        results.append(await _record_portal(ctx, user_id, key, RoomID(room_id), login, info))

    await ctx.queues.submit(key, record)
    result = results[0]
    if result.created:
        await _announce(ctx, result, info, connector.display_name)
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
            f"the bridge bot can't join {room_id}: invite {bot} to the room first",
            code="room_not_joinable",
        ) from None
    if user_id not in members:
        raise LinkError(f"you are not in the room {room_id}", code="not_in_room")
    if ctx.permission_at_least(user_id, "admin"):
        return
    if not await ctx.matrix.can_moderate(room_id, user_id):
        raise LinkError("only the room's moderators can link chats to it", code="no_power")


async def _record_portal(
    ctx: BridgeContext, user_id: str, key: PortalKey, room_id: RoomID, login: NetworkLogin, info: ChatInfo
) -> LinkResult:
    existing = await ctx.db.portals.get(key)
    moved_from = None
    if existing is not None and existing.room_id is not None:
        if existing.room_id == room_id:
            return LinkResult(existing, created=False)
        if not await _may_move(ctx, user_id, existing):
            raise LinkError(
                "that chat is already bridged to a room you are not in", code="already_linked"
            )
        moved_from = existing.room_id
    portal = PortalRow(
        key=key,
        room_id=room_id,
        login_id=LoginID(login.login_id),
        name=info.name,
        topic=info.topic,
        is_direct=info.is_direct,
        created_at=existing.created_at if existing else now_ms(),
    )
    await ctx.db.portals.put(portal)
    return LinkResult(portal, created=True, moved_from=moved_from)


async def _may_move(ctx: BridgeContext, user_id: str, existing: PortalRow) -> bool:
    """Admins, the user whose login the portal was made for, and people in its room."""
    assert existing.room_id is not None
    if ctx.permission_at_least(user_id, "admin"):
        return True
    if any(login.login_id == existing.login_id for login in ctx.logins.of_user(user_id, existing.key.network)):
        return True
    try:
        return user_id in await ctx.matrix.joined_members(existing.room_id)
    except Exception:  # the bot is no longer in the old room: nobody is left to ask
        return True


def bridge_info_content(ctx: BridgeContext, key: PortalKey, info: ChatInfo, network_name: str) -> dict[str, Any]:
    """The ``m.bridge`` content that tells clients (and people) the room is bridged."""
    return {
        "bridgebot": ctx.matrix.bot_mxid,
        "protocol": {"id": key.network, "displayname": network_name},
        "channel": {"id": key.chat_id, "displayname": info.name or ""},
    }


async def _announce(ctx: BridgeContext, result: LinkResult, info: ChatInfo, network_name: str) -> None:
    portal = result.portal
    assert portal.room_id is not None
    content = bridge_info_content(ctx, portal.key, info, network_name)
    for event_type in ("m.bridge", "uk.half-shot.bridge"):
        try:
            await ctx.matrix.send_state(
                portal.room_id, event_type, content, state_key=f"{portal.key.network}/{portal.key.chat_id}"
            )
        except Exception as e:  # the bot may lack the power; the notice below still tells people
            log.info("Could not set %s in %s: %s", event_type, portal.room_id, type(e).__name__)
    chat = f"the {network_name} chat {info.name!r}" if info.name else f"a {network_name} chat"
    await ctx.matrix.notice(
        portal.room_id,
        f"This room is now linked to {chat}: messages here are relayed there and theirs "
        "appear here. The bridge does not store message contents.",
    )
    if result.moved_from is not None:
        try:
            await ctx.matrix.notice(
                result.moved_from,
                f"{chat[0].upper()}{chat[1:]} is now bridged to another room; this room is no "
                "longer bridged to it.",
            )
        except Exception as e:
            log.info("Could not tell %s about the move: %s", result.moved_from, type(e).__name__)
