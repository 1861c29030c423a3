"""What an envelope means beyond plain events, worked out with the login's state and the daemon.

* A group update says only "changed": the group is read again and compared with what the
  portal has (name, description, avatar by the core; members and timer here).
* A disappearing-message timer change is shown as a notice; messages with a timer are
  removed from Matrix when it ends.
* Read receipts name no chat: the chat is looked up from our recent sent messages.
* A deleted message may have become several Matrix events (one per attachment).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ...core.events import (
    MessageContent,
    RemoteChatUpdate,
    RemoteDelete,
    RemoteMemberChange,
    RemoteMessage,
    RemoteReadReceipt,
    Sender,
)
from ...core.ids import RemoteChatID, RemoteMessageID, RemoteUserID
from ...core.text import FormattedText
from .directory import member_ids
from .envelope import (
    ContactsSynced,
    Expiring,
    GroupChanged,
    Hint,
    MessageDeleted,
    NameSeen,
    OwnMessageSeen,
    PartsSent,
    ReceiptSeen,
    TimerSeen,
)
from .expiry import describe_timer
from .ids import message_id

if TYPE_CHECKING:
    from .login import SignalLogin

log = logging.getLogger("bridge.networks.signal.hints")

MAX_REMEMBERED_PARTS = 500


def timer_notice(chat_id: RemoteChatID, sender: Sender, timestamp_ms: int, seconds: int) -> RemoteMessage:
    text = (
        f"Disappearing messages are now set to {describe_timer(seconds)}: messages here are removed "
        "from this room when their timer ends."
        if seconds > 0
        else "Disappearing messages are now off."
    )
    return RemoteMessage(
        chat_id=chat_id,
        sender=sender,
        timestamp_ms=timestamp_ms,
        message_id=RemoteMessageID(f"{message_id(timestamp_ms, sender.user_id)}#timer"),
        content=MessageContent(text=FormattedText(text), notice=True),
    )


class HintHandler:
    def __init__(self, login: SignalLogin) -> None:
        self.login = login

    async def handle(self, hint: Hint) -> None:
        if isinstance(hint, GroupChanged):
            await self._group_changed(hint)
        elif isinstance(hint, TimerSeen):
            await self._timer_seen(hint)
        elif isinstance(hint, Expiring):
            due = hint.timestamp_ms + hint.seconds * 1000
            await self.login.expiry.add(hint.chat_id, list(hint.message_ids), due)
        elif isinstance(hint, MessageDeleted):
            self._deleted(hint)
        elif isinstance(hint, PartsSent):
            await self._parts(hint)
        elif isinstance(hint, ReceiptSeen):
            self._receipt(hint)
        elif isinstance(hint, OwnMessageSeen):
            self.login.remember_sent(hint.chat_id, hint.timestamp_ms)
        elif isinstance(hint, NameSeen):
            await self._name_seen(hint.user_id, hint.name)
        elif isinstance(hint, ContactsSynced):
            for user_id in list(self.login.names):
                await self._refresh_ghost(RemoteUserID(user_id))

    async def _group_changed(self, hint: GroupChanged) -> None:
        login = self.login
        group = await login.directory.group(hint.group_id)
        if group is None:
            log.info("A group update for a group the account doesn't know")
            return
        info = await login.directory.group_info(hint.chat_id, group)
        login.queue(RemoteChatUpdate(chat_id=hint.chat_id, timestamp_ms=hint.timestamp_ms, info=info))
        state = login.groups.setdefault(hint.chat_id, {})
        before = set(state.get("members", []))
        now = member_ids(group.get("members"))
        for user_id in now:
            if user_id not in before:
                login.queue(RemoteMemberChange(chat_id=hint.chat_id, timestamp_ms=hint.timestamp_ms, user_id=user_id, joined=True))
        for user_id in sorted(before - set(now)):
            login.queue(
                RemoteMemberChange(
                    chat_id=hint.chat_id, timestamp_ms=hint.timestamp_ms, user_id=RemoteUserID(user_id), joined=False
                )
            )
        timer = int(group.get("messageExpirationTime") or 0)
        if "timer" in state and int(state["timer"]) != timer:
            login.queue(timer_notice(hint.chat_id, hint.sender, hint.timestamp_ms, timer))
        state["members"], state["timer"] = list(now), timer
        await login.save()

    async def _timer_seen(self, hint: TimerSeen) -> None:
        known = self.login.timers.get(hint.chat_id)
        if known is None and not hint.explicit:
            self.login.timers[hint.chat_id] = hint.seconds
            await self.login.save()
            return
        if hint.seconds != (known or 0):
            self.login.queue(timer_notice(hint.chat_id, hint.sender, hint.timestamp_ms, hint.seconds))
        if known != hint.seconds:
            self.login.timers[hint.chat_id] = hint.seconds
            await self.login.save()

    def _deleted(self, hint: MessageDeleted) -> None:
        count = self.login.parts.get(hint.message_id, 1)
        for part in range(count):
            target = hint.message_id if part == 0 else RemoteMessageID(f"{hint.message_id}#{part}")
            self.login.queue(
                RemoteDelete(chat_id=hint.chat_id, sender=hint.sender, timestamp_ms=hint.timestamp_ms, message_id=target)
            )

    async def _parts(self, hint: PartsSent) -> None:
        parts = self.login.parts
        parts[hint.message_id] = hint.count
        while len(parts) > MAX_REMEMBERED_PARTS:
            parts.pop(next(iter(parts)))
        await self.login.save()

    def _receipt(self, hint: ReceiptSeen) -> None:
        # One receipt per chat: the newest of our messages it covers there.
        newest: dict[RemoteChatID, int] = {}
        for timestamp in hint.timestamps:
            chat = self.login.sent_at.get(timestamp)
            if chat is not None and timestamp > newest.get(chat, 0):
                newest[chat] = timestamp
        for chat, timestamp in newest.items():
            self.login.queue(
                RemoteReadReceipt(chat_id=chat, sender=hint.sender, up_to=message_id(timestamp, self.login.login_id))
            )

    async def _name_seen(self, user_id: RemoteUserID, name: str) -> None:
        previous = self.login.names.get(user_id)
        self.login.names[user_id] = name
        if previous is not None and previous != name:
            await self._refresh_ghost(user_id)

    async def _refresh_ghost(self, user_id: RemoteUserID) -> None:
        try:
            info = await self.login.directory.user_info(user_id)
        except Exception:
            log.info("Could not refresh a Signal profile", exc_info=True)
            return
        await self.login.host.update_ghost(self.login.record.network, info)
