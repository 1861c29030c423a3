"""What the crypto machinery needs to know about rooms: encryption settings and members.

Membership and encryption state come from the appservice transactions (kept in memory by
``MatrixAPI.state_store``); what is not known yet, e.g. after a restart, is asked from the
homeserver, so a message is never sent in plaintext to an encrypted room for want of a
cached state event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from mautrix.crypto import StateStore
from mautrix.errors import MNotFound
from mautrix.types import (
    EncryptionAlgorithm,
    EventType,
    Member,
    Membership,
    RoomEncryptionStateEventContent,
    RoomID,
    UserID,
)
from mautrix.util.async_db import Database

if TYPE_CHECKING:
    from .api import MatrixAPI

log = logging.getLogger("bridge.matrix.crypto")

# What the bot puts in new encrypted portals: Megolm, rotated weekly or every 100 messages
# (the defaults clients use too).
NEW_ROOM_ENCRYPTION = {
    "algorithm": EncryptionAlgorithm.MEGOLM_V1.value,
    "rotation_period_ms": 7 * 24 * 3600 * 1000,
    "rotation_period_msgs": 100,
}

_KEY_HOLDERS = (Membership.JOIN, Membership.INVITE)


class RoomCryptoState(StateStore):
    """The crypto ``StateStore`` for mautrix's OlmMachine, over the bridge's room state."""

    def __init__(self, matrix: MatrixAPI, db: Database, is_ours: Callable[[str], bool]) -> None:
        self._matrix = matrix
        self._db = db
        self._is_ours = is_ours
        self._unencrypted: set[RoomID] = set()
        """Rooms the homeserver said have no ``m.room.encryption`` (until one arrives)."""

    @property
    def _state(self):
        return self._matrix.state_store

    async def get_encryption_info(self, room_id: RoomID) -> RoomEncryptionStateEventContent | None:
        if await self._state.has_encryption_info_cached(room_id):
            return await self._state.get_encryption_info(room_id)
        if room_id in self._unencrypted:
            return None
        try:
            content = await self._matrix.bot.get_state_event(room_id, EventType.ROOM_ENCRYPTION)
        except MNotFound:
            self._unencrypted.add(room_id)
            return None
        # Other errors propagate: better a failed send (retried) than a plaintext one.
        await self._state.set_encryption_info(room_id, content)
        return await self._state.get_encryption_info(room_id)

    async def is_encrypted(self, room_id: RoomID) -> bool:
        info = await self.get_encryption_info(room_id)
        return info is not None and info.algorithm is not None

    async def remember_encrypted(self, room_id: RoomID, content: dict) -> None:
        """Record encryption we turned on ourselves (before its event comes back to us)."""
        self._unencrypted.discard(room_id)
        await self._state.set_encryption_info(room_id, content)

    async def find_shared_rooms(self, user_id: UserID) -> list[RoomID]:
        """Rooms whose outbound sessions must rotate when ``user_id``'s devices change.

        Only rooms where we hold an outbound session matter; where the member list is not
        known (after a restart) the room counts as shared, since a needless rotation costs
        little and a missed one leaves a new device unable to decrypt.
        """
        rows = await self._db.fetch("SELECT DISTINCT room_id FROM crypto_megolm_outbound_session")
        shared = []
        for row in rows:
            room_id = RoomID(row["room_id"])
            member = await self._state.get_member(room_id, user_id)
            if member is None or member.membership in _KEY_HOLDERS:
                shared.append(room_id)
        return shared

    async def key_recipients(self, room_id: RoomID, as_user: str) -> list[UserID]:
        """Who gets a new Megolm session: joined and invited users, except our own.

        Asked from the homeserver every time a session is shared (once per rotation), so
        someone invited a moment ago is not missed. Invited users get the keys too: they
        can read what is sent between the invite and their join, as in other clients.
        """
        events = await self._matrix.intent(as_user).get_members(room_id)
        recipients = []
        for event in events:
            membership = event.content.membership
            user_id = UserID(event.state_key)
            await self._state.set_member(room_id, user_id, Member(membership=membership))
            if membership in _KEY_HOLDERS and not self._is_ours(user_id):
                recipients.append(user_id)
        return recipients
