"""Who is who for one login: JIDs <-> opaque ids, phone number <-> LID, and names.

whatsmeow keeps the phone-number <-> LID map and the contact list in the login's session
database; this class asks it (through neonize) and remembers the answers in memory, so
the bridge's own database never holds a phone number.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ...core.events import UserInfo
from ...core.ids import RemoteChatID, RemoteUserID
from .config import WhatsAppConfig
from .ids import GROUP_SERVER, LID_SERVER, USER_SERVER, IdScheme, Jid
from .neonize_api import from_proto, to_proto

log = logging.getLogger("bridge.networks.whatsapp.people")


class People:
    def __init__(self, ids: IdScheme, config: WhatsAppConfig, client: Callable[[], Any]) -> None:
        self.ids = ids
        self.config = config
        self._client = client
        self._lid_of_pn: dict[str, str] = {}
        self._pn_of_lid: dict[str, str] = {}
        self._reverse: dict[str, Jid] = {}
        """Hashed ids (people and legacy groups) -> their JID, learned while minting them."""
        self._push_names: dict[RemoteUserID, str] = {}
        self._contacts_loaded = False

    @property
    def client(self) -> Any:
        return self._client()

    # Phone number <-> LID --------------------------------------------------------------

    def learn_pair(self, a: Jid | None, b: Jid | None) -> None:
        """Remember that two JIDs (a phone-number one and a LID) are the same person."""
        if a is None or b is None:
            return
        pn, lid = (a, b) if a.server == USER_SERVER else (b, a)
        if pn.server == USER_SERVER and lid.server == LID_SERVER:
            self._lid_of_pn[pn.user] = lid.user
            self._pn_of_lid[lid.user] = pn.user

    async def _lid_for(self, pn: Jid) -> str | None:
        if pn.user in self._lid_of_pn:
            return self._lid_of_pn[pn.user] or None
        try:
            lid = from_proto(await self.client.get_lid_from_pn(to_proto(pn)))
        except Exception:
            lid = None
        self.learn_pair(pn, lid)
        return lid.user if lid is not None else None

    async def phone_number(self, user_id: str) -> str | None:
        jid = await self.jid_for(user_id)
        if jid is None:
            return None
        if jid.server == USER_SERVER:
            return jid.user
        if jid.user in self._pn_of_lid:
            return self._pn_of_lid[jid.user]
        try:
            pn = from_proto(await self.client.get_pn_from_lid(to_proto(jid)))
        except Exception:
            pn = None
        self.learn_pair(jid, pn)
        return pn.user if pn is not None else None

    # Ids -------------------------------------------------------------------------------

    async def user_id(self, jid: Jid, alt: Jid | None = None) -> RemoteUserID:
        """The opaque id of a person; ``alt`` is the other form of their JID, if known."""
        self.learn_pair(jid, alt)
        if jid.server == USER_SERVER:
            if alt is not None and alt.server == LID_SERVER:
                return self.ids.user_id(alt)
            lid = await self._lid_for(jid)
            if lid is not None:
                return self.ids.user_id(Jid(lid, LID_SERVER))
            user_id = self.ids.user_id(jid)
            self._reverse[user_id] = jid
            return user_id
        return self.ids.user_id(jid)

    async def jid_for(self, user_id: str) -> Jid | None:
        """The JID to send to for an id minted by :meth:`user_id` (None if unknown)."""
        jid = IdScheme.jid_of_self_describing(user_id)
        if jid is not None:
            return jid
        if user_id not in self._reverse and not self._contacts_loaded:
            await self.load_contacts()
        return self._reverse.get(user_id)

    def group_chat_id(self, jid: Jid) -> RemoteChatID:
        chat_id = self.ids.group_chat_id(jid)
        self._reverse[chat_id] = jid
        return chat_id

    async def chat_jid(self, chat_id: str) -> Jid | None:
        kind, peer = IdScheme.parse_chat_id(chat_id)
        if kind == "direct":
            assert peer is not None
            return await self.jid_for(peer)
        jid = IdScheme.group_jid_of_self_describing(chat_id)
        if jid is None and chat_id not in self._reverse:
            await self.load_groups()
        return jid or self._reverse.get(chat_id)

    async def load_contacts(self) -> None:
        """Learn the hashed ids of everyone in the session's contact store."""
        self._contacts_loaded = True
        try:
            contacts = await self.client.contact.get_all_contacts()
        except Exception:
            log.warning("Could not read the WhatsApp contact store", exc_info=True)
            return
        for contact in contacts:
            jid = from_proto(contact.JID)
            if jid is None or not jid.is_user:
                continue
            if jid.server == USER_SERVER:
                self._reverse.setdefault(self.ids.user_id(jid), jid)
                lid = self._lid_of_pn.get(jid.user)
                user_id = self.ids.user_id(Jid(lid, LID_SERVER) if lid else jid)
            else:
                user_id = self.ids.user_id(jid)
            name = contact.Info.PushName or contact.Info.BusinessName
            if name:
                self._push_names.setdefault(user_id, name)

    async def load_groups(self) -> list[Any]:
        try:
            groups = list(await self.client.get_joined_groups())
        except Exception:
            log.warning("Could not list the WhatsApp groups", exc_info=True)
            return []
        for group in groups:
            jid = from_proto(group.JID)
            if jid is not None and jid.server == GROUP_SERVER:
                self.group_chat_id(jid)
        return groups

    # Names -----------------------------------------------------------------------------

    def learn_push_name(self, user_id: RemoteUserID, name: str) -> bool:
        """Remember a person's self-chosen name; True when it changed."""
        name = name.strip()
        if not name or self._push_names.get(user_id) == name:
            return False
        self._push_names[user_id] = name
        return True

    async def user_info(
        self, user_id: RemoteUserID, avatar: Callable[[Jid], Awaitable[tuple[Any, str | None]]] | None = None
    ) -> UserInfo:
        """A person's profile: their own name (or the address-book name if the admin opted
        in), never their phone number unless ``show_phone_numbers`` is set."""
        jid = await self.jid_for(user_id)
        name = self._push_names.get(user_id)
        contact_name = None
        if jid is not None:
            try:
                info = await self.client.contact.get_contact(to_proto(jid))
                if info.Found:
                    name = name or info.PushName or info.BusinessName or None
                    contact_name = info.FullName or info.FirstName or None
            except Exception:
                log.debug("No contact entry for %s", user_id)
        if self.config.use_contact_names and contact_name:
            name = contact_name
        if self.config.show_phone_numbers:
            phone = await self.phone_number(user_id)
            if phone:
                name = f"{name or 'WhatsApp user'}, +{phone}"
        media, avatar_id = (None, None)
        if avatar is not None and jid is not None:
            media, avatar_id = await avatar(jid)
        return UserInfo(user_id=user_id, display_name=name, avatar=media, avatar_id=avatar_id)
