"""Hub rooms: relaying between chats linked to one room, with minimal disclosure.

What crosses from one network to another is the sender's display name (and network) and
the content, nothing else: no phone number, user name, id, avatar or profile text.
People are told the chat is bridged, once each, and may opt out from any side.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from ..db.messages import MessageRow
from ..db.portals import PortalRow
from .connector import NetworkLogin, OutgoingMessage
from .context import BridgeContext, now_ms, stable_id
from .ghosts import looks_like_phone_number
from .ids import PortalKey, RemoteMessageID
from .text import FormattedText

log = logging.getLogger("bridge.core.hub")

MATRIX_LABEL = "Matrix"


def matrix_subject(mxid: str) -> str:
    """The opt-out key of a Matrix user."""
    return mxid


def remote_subject(key: PortalKey | str, user_id: str) -> str:
    """The opt-out key of a remote person: their network and opaque id."""
    network = key.network if isinstance(key, PortalKey) else key
    return f"{network}:{user_id}"


class HubRelay:
    def __init__(self, ctx: BridgeContext) -> None:
        self.ctx = ctx

    @property
    def config(self):
        return self.ctx.config.bridge.relay

    # Names -------------------------------------------------------------------------------

    async def sender_name(self, room_id: str, sender: str) -> str:
        """How a relayed sender is shown: display name and network, or a pseudonym."""
        if self.config.names == "pseudonym":
            return f"Guest {stable_id('pseudonym', room_id, sender, length=4)}"
        name = await self._display_name(room_id, sender)
        if self.ctx.ghost_ids.parse(sender) is None:
            # A Matrix user: their display name only, never their user id.
            return f"{name} ({MATRIX_LABEL})" if name else f"Someone ({MATRIX_LABEL})"
        return name or "Someone"

    async def _display_name(self, room_id: str, mxid: str) -> str | None:
        name = None
        member = await self.ctx.matrix.state_store.get_member(room_id, mxid)
        if member is not None and member.displayname:
            name = member.displayname
        else:
            try:
                name = await self.ctx.matrix.bot.get_displayname(mxid)
            except Exception:
                log.debug("No display name for a relayed sender", exc_info=True)
        if not name or name == mxid or name.startswith("@") or looks_like_phone_number(name):
            return None
        return name

    def render(self, name: str, text: FormattedText) -> FormattedText:
        before, _, after = self.config.template.partition("{message}")
        return FormattedText(before.format(name=name)) + text + FormattedText(after.format(name=name))

    # Sending the bridge's own words into a chat --------------------------------------------

    async def post_to_chat(self, portal: PortalRow, login: NetworkLogin, text: str) -> None:
        """Send a notice into a remote chat and remember it, so its echo is not bridged."""
        result = await login.send_message(
            portal.key.chat_id,
            OutgoingMessage(
                text=FormattedText(text),
                txn_id="notice" + stable_id(portal.key.network, portal.key.chat_id, text, str(now_ms())),
            ),
        )
        await self.ctx.db.messages.put(
            MessageRow(
                portal=portal.key,
                remote_id=result.message_id,
                part=0,
                room_id=portal.room_id or "",
                event_id=f"notice:{result.message_id}",
                sender=self.ctx.matrix.bot_mxid,
                timestamp=now_ms(),
            )
        )

    async def linked_networks_text(self, room_id: str, exclude: PortalKey | None = None) -> str:
        names = []
        for other in await self.ctx.db.portals.by_room(room_id):
            if other.key == exclude:
                continue
            label = self.ctx.logins.connector(other.key.network).display_name
            if label not in names:
                names.append(label)
        names.append(MATRIX_LABEL)
        return ", ".join(names)

    def _server(self) -> str:
        return self.ctx.config.homeserver.domain

    def _policy(self) -> str:
        url = self.config.privacy_policy_url
        return f" Privacy policy: {url}" if url else ""

    async def announce_link(self, portal: PortalRow, login: NetworkLogin) -> None:
        if not self.config.notices or portal.room_id is None:
            return
        networks = await self.linked_networks_text(portal.room_id, exclude=portal.key)
        prefix = self.ctx.config.bridge.command_prefix
        await self.post_to_chat(
            portal,
            login,
            f"This chat is now bridged by the server {self._server()} to: {networks}. "
            "Only display names and messages are passed on." + self._policy()
            + f" Send '{prefix} optout' to keep your messages in this chat.",
        )

    async def greet_if_new(self, portal: PortalRow, login: NetworkLogin, user_id: str, name: str) -> None:
        """Tell a person who first appears in a linked chat that it is bridged (once)."""
        if not self.config.notices or not portal.relay or portal.room_id is None:
            return
        if not await self.ctx.db.privacy.claim_notice(portal.key, remote_subject(portal.key, user_id)):
            return
        networks = await self.linked_networks_text(portal.room_id, exclude=portal.key)
        prefix = self.ctx.config.bridge.command_prefix
        await self.post_to_chat(
            portal,
            login,
            f"Hello {name}: this chat is bridged by {self._server()} to {networks}; your display "
            "name and messages are passed on there." + self._policy()
            + f" Send '{prefix} optout' to stop that.",
        )

    # Messages from linked chats -----------------------------------------------------------

    def relay_login(self, portal: PortalRow, fallback: NetworkLogin) -> NetworkLogin:
        if portal.login_id:
            login = self.ctx.logins.get(portal.key.network, portal.login_id)
            if login is not None:
                return login
        return fallback

    async def intercept(self, login: NetworkLogin, portal: PortalRow, sender_id: str, text: str) -> bool:
        """Handle what a hub portal must not simply bridge; True when the message is consumed.

        That is a bridge command typed in the remote chat (``who``, ``optout``, ``optin``),
        or a message of someone who opted out: it stays in their chat.
        """
        subject = remote_subject(portal.key, sender_id)
        prefix = self.ctx.config.bridge.command_prefix
        stripped = text.strip()
        if stripped == prefix or stripped.startswith(prefix + " "):
            command = stripped[len(prefix) :].strip().lower()
            sender = self.relay_login(portal, login)
            if command == "optout":
                await self.ctx.db.privacy.opt_out(subject, now_ms())
                reply = f"Done: your messages stay in this chat now. '{prefix} optin' undoes this."
            elif command == "optin":
                await self.ctx.db.privacy.opt_in(subject)
                reply = "Done: your messages are relayed to the linked chats again."
            elif command == "who" and portal.room_id:
                reply = "Who is here, by display name:\n" + await self.who(portal.room_id)
            else:
                reply = f"Commands here: '{prefix} who', '{prefix} optout', '{prefix} optin'."
            await self.post_to_chat(portal, sender, reply)
            return True
        return await self.ctx.db.privacy.is_opted_out(subject)

    async def greet(self, login: NetworkLogin, portal: PortalRow, sender_id: str) -> None:
        ghost = await self.ctx.db.ghosts.get(self.ctx.ghost_ids.parse(
            self.ctx.ghosts.mxid(portal.key.network, sender_id)))
        label = self.ctx.logins.connector(portal.key.network).display_name
        name = _strip_network(ghost.name, label) if ghost and ghost.name else "there"
        await self.greet_if_new(portal, self.relay_login(portal, login), sender_id, name)

    # Who is here ------------------------------------------------------------------------------

    async def who(self, room_id: str) -> str:
        lines = []
        for portal in await self.ctx.db.portals.by_room(room_id):
            label = self.ctx.logins.connector(portal.key.network).display_name
            login = self.ctx.logins.get(portal.key.network, portal.login_id) if portal.login_id else None
            names: list[str] = []
            if login is not None:
                try:
                    info = await login.get_chat_info(portal.key.chat_id)
                    for member in info.members:
                        ghost = await self.ctx.db.ghosts.get(
                            self.ctx.ghost_ids.parse(self.ctx.ghosts.mxid(portal.key.network, member))
                        )
                        names.append(_strip_network(ghost.name if ghost and ghost.name else "Someone", label))
                except Exception:
                    log.warning("Could not list the members of %s", portal.key, exc_info=True)
            lines.append(f"{label} ({portal.name or 'chat'}): {', '.join(sorted(names)) or 'nobody visible'}")
        matrix_names = []
        for mxid in await self.ctx.matrix.joined_members(room_id):
            if mxid == self.ctx.matrix.bot_mxid or self.ctx.ghost_ids.parse(mxid) is not None:
                continue
            matrix_names.append(await self._display_name(room_id, mxid) or "Someone")
        lines.append(f"{MATRIX_LABEL}: {', '.join(sorted(matrix_names)) or 'nobody'}")
        return "\n".join(lines)


def _strip_network(name: str, label: str) -> str:
    suffix = f" ({label})"
    return name[: -len(suffix)] if name.endswith(suffix) else name


__all__ = ["HubRelay", "matrix_subject", "remote_subject", "RemoteMessageID", "replace"]
