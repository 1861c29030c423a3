"""Ghosts: remote people shown as Matrix users, with names that reveal no phone number."""

from __future__ import annotations

import logging
import re
import unicodedata

from ..db.portals import GhostRow
from .connector import NetworkLogin
from .context import BridgeContext
from .events import UserInfo
from .ids import GhostKey, NetworkID, RemoteUserID, UserID

log = logging.getLogger("bridge.core.ghosts")

_PHONE_LIKE = re.compile(r"^\s*\+?[\d\s().\-/]{6,}\s*$")
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-")


def _visible(text: str) -> str:
    """Drop invisible format characters (bidi marks, isolates) and unify dashes and spaces."""
    kept = "".join(c for c in text if unicodedata.category(c) != "Cf")
    kept = kept.translate(_DASHES)
    return "".join(" " if c.isspace() else c for c in kept)


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def looks_like_phone_number(name: str) -> bool:
    visible = _visible(name)
    return bool(_PHONE_LIKE.match(visible)) and len(_digits(visible)) >= 6


def _reveals_phone(name: str, phone: str | None) -> bool:
    if looks_like_phone_number(name):
        return True
    number = _digits(phone or "")
    # Compare digits only, so "+49 151 ..." in a name matches "+49151..." on file; the
    # last digits alone are enough to identify a number.
    return len(number) >= 6 and number[-6:] in _digits(_visible(name))


def safe_display_name(info: UserInfo, network_name: str) -> str:
    """The ghost's display name: the person's name, never their phone number."""
    name = (info.display_name or "").strip()
    if not name or _reveals_phone(name, info.phone):
        name = (info.username or "").strip()
        if not name or _reveals_phone(name, info.phone):
            name = "Unknown user"
    return f"{name} ({network_name})"


class Ghosts:
    def __init__(self, ctx: BridgeContext) -> None:
        self.ctx = ctx
        self._synced: set[GhostKey] = set()

    def mxid(self, network: NetworkID, user_id: RemoteUserID) -> UserID:
        return self.ctx.ghost_ids.mxid(GhostKey(network, user_id))

    def parse(self, mxid: str) -> GhostKey | None:
        return self.ctx.ghost_ids.parse(mxid)

    async def ensure(self, login: NetworkLogin, user_id: RemoteUserID) -> UserID:
        """Register the ghost and give it a profile, once per process unless it changes."""
        key = GhostKey(login.record.network, user_id)
        mxid = self.ctx.ghost_ids.mxid(key)
        if key in self._synced:
            return mxid
        row = await self.ctx.db.ghosts.get(key)
        if row is None or row.name is None:
            try:
                info = await login.get_user_info(user_id)
            except Exception:
                log.warning("Could not fetch the profile of %s", key, exc_info=True)
                info = UserInfo(user_id=user_id)
            await self.apply(key.network, info, login)
        else:
            await self.ctx.matrix.ensure_registered(mxid)
        self._synced.add(key)
        return mxid

    async def apply(
        self, network: NetworkID, info: UserInfo, login: NetworkLogin | None = None
    ) -> None:
        """Bring a ghost's name and avatar in line with ``info`` (only what changed)."""
        key = GhostKey(network, info.user_id)
        mxid = self.ctx.ghost_ids.mxid(key)
        row = await self.ctx.db.ghosts.get(key) or GhostRow(key=key)
        connector = self.ctx.logins.connector(network)
        name = safe_display_name(info, connector.display_name)
        new_name = name if name != row.name else None
        new_avatar = None
        if info.avatar is not None and info.avatar_id and info.avatar_id != row.avatar_id:
            try:
                data = await info.avatar.fetch()
                new_avatar = await self.ctx.matrix.upload(
                    data, info.avatar.mime_type, info.avatar.file_name
                )
            except Exception:
                log.warning("Could not copy the avatar of %s", key, exc_info=True)
        await self.ctx.matrix.set_profile(mxid, name=new_name, avatar_mxc=new_avatar)
        row.name = name
        if new_avatar:
            row.avatar_id, row.avatar_mxc = info.avatar_id, new_avatar
        row.registered = True
        await self.ctx.db.ghosts.put(row)
        self._synced.add(key)
