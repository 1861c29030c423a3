"""A Telethon session kept in the bridge database instead of a file.

The whole session lives in :attr:`LoginRecord.metadata` as plain JSON:

* ``auth``: data centre, address, port and the auth key (base64) - the login itself;
* ``peers``: ``{marked peer id: access hash}``, what Telegram needs to address a user or
  channel again after a restart (no names, no phone numbers);
* ``state``: the update state (pts, qts, date, seq and each channel's pts) up to which
  every update has been handled by the core. Telethon resumes from it with
  ``updates.getDifference``, so nothing that happened while the bridge was down is lost.

The metadata holds a secret (the auth key): it is never logged.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

from telethon.crypto import AuthKey
from telethon.sessions import MemorySession
from telethon.tl import types as tl

STATE_KEY = "state"


def _utc(timestamp: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)


class BridgeSession(MemorySession):
    """An in-memory Telethon session that loads from and exports to login metadata."""

    def __init__(self, metadata: dict[str, Any] | None = None) -> None:
        super().__init__()
        metadata = metadata or {}
        self._checkpoint: dict[str, Any] | None = metadata.get(STATE_KEY)
        auth = metadata.get("auth")
        if auth:
            self.set_dc(int(auth["dc_id"]), str(auth["address"]), int(auth["port"]))
            self.auth_key = AuthKey(base64.b64decode(auth["auth_key"]))
        users, chats = [], []
        for marked, access_hash in (metadata.get("peers") or {}).items():
            peer_id = int(marked)
            if peer_id > 0:
                users.append(tl.InputPeerUser(peer_id, int(access_hash)))
            elif str(marked).startswith("-100"):
                chats.append(tl.InputPeerChannel(int(str(marked)[4:]), int(access_hash)))
        self_id = metadata.get("self_id")
        if self_id:
            # Telethon's own convention: its id is stored as the access hash of "user 0".
            users.append(tl.InputPeerUser(0, int(self_id)))
        if users or chats:
            self.process_entities(tl.contacts.ResolvedPeer(None, chats, users))

    # What Telethon reads at connect time to catch up ---------------------------------------

    def get_update_states(self):
        """The last checkpoint: Telethon's catch-up starts from here."""
        if not self._checkpoint:
            return []
        cp = self._checkpoint
        date = _utc(int(cp.get("date") or 0))
        states = [(0, tl.updates.State(int(cp["pts"]), int(cp["qts"]), date, int(cp["seq"]), 0))]
        for channel_id, pts in (cp.get("channels") or {}).items():
            states.append((int(channel_id), tl.updates.State(int(pts), 0, date, 0, 0)))
        return states

    def set_checkpoint(self, account: dict[str, Any], channels: dict[int, int]) -> None:
        """Remember an update state known to be fully handled (see :mod:`.client`)."""
        date = account.get("date")
        if isinstance(date, datetime.datetime):
            date = int(date.timestamp())
        self._checkpoint = {
            "pts": int(account.get("pts") or 0),
            "qts": int(account.get("qts") or 0),
            "date": int(date or 0),
            "seq": int(account.get("seq") or 0),
            "channels": {str(k): int(v) for k, v in channels.items()},
        }

    # Export -------------------------------------------------------------------------------

    def export(self, self_id: int | None) -> dict[str, Any]:
        """The session as JSON-serialisable login metadata."""
        out: dict[str, Any] = {}
        if self.auth_key is not None and self.auth_key.key:
            out["auth"] = {
                "dc_id": self.dc_id,
                "address": self.server_address,
                "port": self.port,
                "auth_key": base64.b64encode(self.auth_key.key).decode("ascii"),
            }
        peers: dict[str, int] = {}
        for row in self._entities:
            marked, access_hash = row[0], row[1]
            if marked and access_hash and (marked > 0 or str(marked).startswith("-100")):
                peers[str(marked)] = int(access_hash)
        out["peers"] = peers
        if self_id:
            out["self_id"] = int(self_id)
        if self._checkpoint:
            out[STATE_KEY] = dict(self._checkpoint)
        return out
