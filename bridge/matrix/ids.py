"""Ghost user ids: ``@{prefix}{network}_{escaped remote id}:{domain}``.

The remote id is opaque; it is escaped into the characters Matrix allows in a localpart
(lowercase letters, digits and ``._-``), every other byte written as ``=xx``. Connectors
never put phone numbers into remote user ids, so none reaches a Matrix id.
"""

from __future__ import annotations

import re

from ..core.ids import GhostKey, NetworkID, RemoteUserID, UserID

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_ESCAPED = re.compile(r"=([0-9a-f]{2})")
NETWORK_NAME = re.compile(r"[a-z][a-z0-9]*")


def escape_localpart(value: str) -> str:
    out: list[str] = []
    for char in value:
        if char in _SAFE:
            out.append(char)
        else:
            out.extend(f"={byte:02x}" for byte in char.encode("utf-8"))
    return "".join(out)


def unescape_localpart(value: str) -> str:
    data = bytearray()
    i = 0
    while i < len(value):
        match = _ESCAPED.match(value, i)
        if match:
            data.append(int(match.group(1), 16))
            i = match.end()
        else:
            data.extend(value[i].encode("utf-8"))
            i += 1
    return data.decode("utf-8", errors="replace")


class GhostIDs:
    """Maps ghost keys to Matrix user ids and back for one homeserver domain."""

    def __init__(self, prefix: str, domain: str) -> None:
        self.prefix = prefix
        self.domain = domain

    def mxid(self, key: GhostKey) -> UserID:
        return UserID(f"@{self.prefix}{key.network}_{escape_localpart(key.user_id)}:{self.domain}")

    def parse(self, mxid: str) -> GhostKey | None:
        """The ghost key of a ghost's user id, or None for any other user."""
        if not mxid.startswith("@" + self.prefix) or not mxid.endswith(":" + self.domain):
            return None
        local = mxid[1 + len(self.prefix) : -len(self.domain) - 1]
        network, sep, escaped = local.partition("_")
        if not sep or not escaped or not NETWORK_NAME.fullmatch(network):
            return None
        key = GhostKey(NetworkID(network), RemoteUserID(unescape_localpart(escaped)))
        # Only the one canonical spelling is a ghost: "=61" and "a" must not both be "a".
        return key if self.mxid(key) == mxid else None

    def namespace_regex(self, network: str) -> str:
        """The exclusive user namespace of one network's ghosts, for the registration.

        Anchored at both ends: homeservers match it from the start, and without the end
        anchor it would also claim users of a longer server name.
        """
        return f"^@{re.escape(self.prefix + network)}_[^:]+:{re.escape(self.domain)}$"
