"""Opaque ids for WhatsApp people, chats and messages. Pure code.

WhatsApp addresses a person either by phone number (``4915112345678@s.whatsapp.net``) or
by a LID (``123456789012345@lid``, an id that reveals no number). Remote user ids are:

* ``lid.<lid>`` whenever the LID is known (preferred: it is WhatsApp's own opaque id);
* ``pn.<hmac>`` where only the phone number is known: an HMAC-SHA256 of the number under
  a per-bridge secret, so the id is stable but the number can't be read back or guessed
  from it without the secret;
* ``bot.<user>`` for WhatsApp's bot accounts.

Chat ids: ``g.<group id>`` for a group (legacy group ids that contain the creator's phone
number are hashed like phone numbers); ``dm.<login id>.<peer id>`` for a direct chat, so
two logins never share one portal. Message ids: ``<sender id>.<WhatsApp message id>``,
since WhatsApp message ids are only unique per chat and sender, and the sender is needed
to react to, reply to or revoke a message.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from ...core.ids import RemoteChatID, RemoteMessageID, RemoteUserID

USER_SERVER = "s.whatsapp.net"
LID_SERVER = "lid"
GROUP_SERVER = "g.us"
BOT_SERVER = "bot"

_DIGITS = re.compile(r"[0-9]+")
_NEW_GROUP = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class Jid:
    """A WhatsApp address without device part: ``user@server``."""

    user: str
    server: str

    @classmethod
    def parse(cls, value: str) -> Jid:
        user, sep, server = value.partition("@")
        if not sep:
            raise ValueError(f"not a JID: {value!r}")
        user = user.split(":", 1)[0].split(".", 1)[0]  # drop agent and device parts
        return cls(user, server)

    def __str__(self) -> str:
        return f"{self.user}@{self.server}"

    @property
    def is_group(self) -> bool:
        return self.server == GROUP_SERVER

    @property
    def is_user(self) -> bool:
        return self.server in (USER_SERVER, LID_SERVER, BOT_SERVER)


class IdScheme:
    """Mints and reads ids; ``secret`` is the bridge-wide key for hashed phone numbers."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the id secret must have at least 16 bytes")
        self._secret = secret

    def digest(self, value: str) -> str:
        mac = hmac.new(self._secret, value.encode("utf-8"), hashlib.sha256)
        return mac.hexdigest()[:32]

    # People --------------------------------------------------------------------------

    def user_id(self, jid: Jid) -> RemoteUserID:
        """The id of a person given their JID; a phone-number JID is hashed.

        Callers that know the person's LID pass that instead (see ``People.user_id``).
        """
        if jid.server == LID_SERVER:
            return RemoteUserID(f"lid.{jid.user}")
        if jid.server == BOT_SERVER:
            return RemoteUserID(f"bot.{jid.user}")
        if jid.server == USER_SERVER:
            return RemoteUserID(f"pn.{self.digest('pn:' + jid.user)}")
        raise ValueError(f"not a person's JID: {jid}")

    @staticmethod
    def jid_of_self_describing(user_id: str) -> Jid | None:
        """The JID of an id that carries it (``lid.``/``bot.``); None for hashed ids."""
        kind, _, value = user_id.partition(".")
        if not _DIGITS.fullmatch(value):
            return None
        if kind == "lid":
            return Jid(value, LID_SERVER)
        if kind == "bot":
            return Jid(value, BOT_SERVER)
        return None

    # Chats ---------------------------------------------------------------------------

    def group_chat_id(self, jid: Jid) -> RemoteChatID:
        if _NEW_GROUP.fullmatch(jid.user):
            return RemoteChatID(f"g.{jid.user}")
        # Legacy ids look like "<creator's number>-<timestamp>": never show them.
        return RemoteChatID(f"g.h{self.digest('g:' + jid.user)}")

    @staticmethod
    def group_jid_of_self_describing(chat_id: str) -> Jid | None:
        kind, _, value = chat_id.partition(".")
        if kind == "g" and _NEW_GROUP.fullmatch(value):
            return Jid(value, GROUP_SERVER)
        return None

    @staticmethod
    def direct_chat_id(login_id: str, peer: RemoteUserID) -> RemoteChatID:
        return RemoteChatID(f"dm.{login_id}.{peer}")

    @staticmethod
    def parse_chat_id(chat_id: str) -> tuple[str, RemoteUserID | None]:
        """``("group", None)`` or ``("direct", peer id)``; raises ValueError otherwise."""
        parts = chat_id.split(".")
        if parts[0] == "g" and len(parts) == 2:
            return "group", None
        if parts[0] == "dm" and len(parts) == 5:
            return "direct", RemoteUserID(f"{parts[3]}.{parts[4]}")
        raise ValueError(f"not a WhatsApp chat id: {chat_id!r}")

    # Messages ------------------------------------------------------------------------

    @staticmethod
    def message_id(sender: RemoteUserID, wa_id: str) -> RemoteMessageID:
        return RemoteMessageID(f"{sender}.{wa_id}")

    @staticmethod
    def parse_message_id(message_id: str) -> tuple[RemoteUserID, str]:
        """``(sender id, WhatsApp message id)``."""
        sender, sep, wa_id = message_id.rpartition(".")
        if not sep or "." not in sender or not wa_id:
            raise ValueError(f"not a WhatsApp message id: {message_id!r}")
        return RemoteUserID(sender), wa_id
