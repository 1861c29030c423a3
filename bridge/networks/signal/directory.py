"""People and chats as one Signal account sees them, read from the daemon.

Names: a person's own profile name comes first (they chose it to be seen), then the name
the account owner saved for them, then their username. Ghosts are shared by everyone on
the bridge, so the owner's private address-book name is only a fallback. A phone number
is never a name unless the admin sets ``show_phone_numbers``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import TYPE_CHECKING, Any

from ...core.events import ChatInfo, MediaKind, RemoteMedia, UserInfo
from ...core.ids import RemoteChatID, RemoteUserID
from .ids import parse_chat_id, normalize_aci
from .rpc import SignalRpcError

if TYPE_CHECKING:
    from .login import SignalLogin

log = logging.getLogger("bridge.networks.signal.directory")


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _joined(*parts: Any) -> str:
    return " ".join(p for p in (_text(x) for x in parts) if p)


def contact_name(contact: dict[str, Any]) -> str:
    """The best name for a ``listContacts`` entry, without any phone number."""
    profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
    return (
        _joined(profile.get("givenName"), profile.get("familyName"))
        or _text(contact.get("nickName"))
        or _joined(contact.get("nickGivenName"), contact.get("nickFamilyName"))
        or _joined(contact.get("givenName"), contact.get("familyName"))
        or _text(contact.get("name"))
        or _text(contact.get("username"))
    )


def member_ids(members: Any) -> list[RemoteUserID]:
    """ACIs of ``listGroups`` members (``{number, uuid}`` objects); members without one are skipped."""
    out: list[RemoteUserID] = []
    for member in members if isinstance(members, list) else []:
        aci = normalize_aci(member.get("uuid")) if isinstance(member, dict) else normalize_aci(member)
        if aci is not None and aci not in out:
            out.append(aci)
    return out


class Directory:
    """Looks people and groups up through one login's daemon connection."""

    def __init__(self, login: SignalLogin) -> None:
        self.login = login

    # People ------------------------------------------------------------------------------------

    async def contact(self, aci: str) -> dict[str, Any] | None:
        contacts = await self.login.call("listContacts", {"recipient": [aci], "allRecipients": True})
        for contact in contacts if isinstance(contacts, list) else []:
            if isinstance(contact, dict) and normalize_aci(contact.get("uuid")) == aci:
                return contact
        return None

    async def user_info(self, aci: str) -> UserInfo:
        contact = await self.contact(aci) or {}
        name = contact_name(contact)
        number = contact.get("number") if isinstance(contact.get("number"), str) else None
        phone: str | None = number
        if self.login.connector.config.show_phone_numbers and number:
            # The admin opted in: the number is part of the name on purpose.
            name = f"{name} ({number})" if name else f"Signal user {number}"
            phone = None
        profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
        avatar, avatar_id = None, None
        if profile.get("hasAvatar"):
            avatar_id = f"profile:{aci}:{profile.get('lastUpdateTimestamp', 0)}"
            avatar = RemoteMedia(
                kind=MediaKind.IMAGE, mime_type="image/jpeg", file_name="avatar.jpg", size=None,
                fetch=lambda: self._avatar({"profile": aci}),
            )
        return UserInfo(
            user_id=RemoteUserID(aci),
            display_name=name or None,
            avatar=avatar,
            avatar_id=avatar_id,
            phone=phone,
            username=_text(contact.get("username")) or None,
        )

    async def _avatar(self, params: dict[str, Any]) -> bytes:
        result = await self.login.call("getAvatar", params)
        return base64.b64decode(result["data"])

    # Chats -------------------------------------------------------------------------------------

    async def group(self, group_id: str) -> dict[str, Any] | None:
        groups = await self.login.call("listGroups", {"groupId": [group_id]})
        for group in groups if isinstance(groups, list) else []:
            if isinstance(group, dict) and group.get("id") == group_id:
                return group
        return None

    async def groups(self) -> list[dict[str, Any]]:
        groups = await self.login.call("listGroups", {})
        return [g for g in groups if isinstance(g, dict) and g.get("isMember", True)] if isinstance(groups, list) else []

    async def group_avatar(self, group_id: str) -> bytes | None:
        try:
            return await self._avatar({"groupId": group_id})
        except SignalRpcError:
            return None  # "Could not find avatar": the group has none

    async def chat_info(self, chat_id: RemoteChatID) -> tuple[ChatInfo, dict[str, Any] | None]:
        """A chat's info, and for a group also its ``listGroups`` entry."""
        ref = parse_chat_id(chat_id, self.login.login_id)
        if ref is None:
            raise KeyError(f"{chat_id} is not a chat of this Signal login")
        if ref.peer is not None:
            members = tuple(dict.fromkeys([RemoteUserID(self.login.login_id), ref.peer]))
            return ChatInfo(chat_id=chat_id, members=members, is_direct=True), None
        assert ref.group_id is not None
        group = await self.group(ref.group_id)
        if group is None:
            raise KeyError(f"the Signal group {ref.group_id} is unknown to this account")
        return await self.group_info(chat_id, group), group

    async def group_info(self, chat_id: RemoteChatID, group: dict[str, Any]) -> ChatInfo:
        avatar_data = await self.group_avatar(str(group["id"]))
        avatar, avatar_id = None, None
        if avatar_data:
            avatar_id = "group:" + hashlib.sha256(avatar_data).hexdigest()[:24]
            avatar = RemoteMedia(
                kind=MediaKind.IMAGE, mime_type="image/jpeg", file_name="group-avatar.jpg",
                size=len(avatar_data), fetch=lambda: self._constant(avatar_data),
            )
        return ChatInfo(
            chat_id=chat_id,
            name=_text(group.get("name")) or None,
            topic=_text(group.get("description")),
            members=tuple(member_ids(group.get("members"))),
            avatar=avatar,
            avatar_id=avatar_id,
        )

    @staticmethod
    async def _constant(data: bytes) -> bytes:
        return data
