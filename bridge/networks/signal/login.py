"""One linked Signal account: its daemon connection, what it receives, what it sends.

The daemon must run with ``--receive-mode manual``: then it fetches messages from Signal's
servers only while the bridge is subscribed, and whatever arrives while the bridge is away
waits on the servers. signal-cli acknowledges a message to Signal once it has passed it
to the bridge, so the bridge handles every received envelope before it lets go: at
shutdown it first unsubscribes, then finishes what it holds (``stop_receiving``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ...core.connector import ChatChange, LoginState, NetworkLogin, OutgoingMessage, SendResult
from ...core.events import ChatInfo, RemoteDelete, RemoteEvent, UserInfo
from ...core.ids import RemoteChatID, RemoteMessageID
from ...core.text import FormattedText
from .directory import Directory
from .envelope import EnvelopeReader, Fetch
from .expiry import ExpiryScheduler
from .hints import HintHandler
from .ids import group_chat_id
from .rpc import DaemonUnavailable, SignalRpc, SignalRpcError
from .sending import Outbox, data_uri

if TYPE_CHECKING:
    from ...core.connector import LoginRecord
    from .connector import SignalConnector

log = logging.getLogger("bridge.networks.signal")

MAX_EVENT_ATTEMPTS = 5
"""How often an event the core failed to handle is queued again (the daemon can't resend it)."""


class DaemonMedia:
    """Attachments and stickers, fetched from the daemon when the core bridges them."""

    def __init__(self, login: SignalLogin) -> None:
        self.login = login

    def attachment(self, attachment_id: str) -> Fetch:
        return lambda: self._get("getAttachment", {"id": attachment_id})

    def sticker(self, pack_id: str, sticker_id: int) -> Fetch:
        return lambda: self._get("getSticker", {"packId": pack_id, "stickerId": sticker_id})

    async def _get(self, method: str, params: dict[str, Any]) -> bytes:
        result = await self.login.call(method, params)
        return base64.b64decode(result["data"])


class SignalLogin(NetworkLogin):
    def __init__(self, connector: SignalConnector, record: LoginRecord) -> None:
        super().__init__(record)
        self.connector = connector
        self.account: str = record.metadata["account"]
        """signal-cli names accounts by phone number; it stays in the bridge database only."""
        meta = record.metadata
        self.timers: dict[str, int] = meta.setdefault("timers", {})
        self.groups: dict[str, dict[str, Any]] = meta.setdefault("groups", {})
        self.parts: dict[str, int] = meta.setdefault("parts", {})
        self.directory = Directory(self)
        self.outbox = Outbox(self)
        self.reader = EnvelopeReader(self.login_id, DaemonMedia(self), self._known_name)
        self.expiry = ExpiryScheduler(meta.setdefault("expiring", []), self._expire, self.save)
        self.hints = HintHandler(self)
        self.names: dict[str, str] = {}
        self.sent_at: OrderedDict[int, RemoteChatID] = OrderedDict()
        """Our recent message timestamps and their chats: receipts name no chat."""
        self._rpc: SignalRpc | None = None
        self._subscription: int | None = None
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._inflight: set[asyncio.Future[None]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._processor: asyncio.Task[None] | None = None
        self._receiving = False
        self._warned_mode = False

    @property
    def host(self):
        return self.connector.host

    async def save(self) -> None:
        await self.host.save_login(self)

    # Daemon connection ---------------------------------------------------------------------------

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Call the daemon for this account."""
        rpc = self._rpc
        if rpc is None or rpc.closed.is_set():
            raise DaemonUnavailable("not connected to the signal-cli daemon")
        return await rpc.call(
            method, {"account": self.account, **(params or {})}, timeout=self.connector.config.request_timeout
        )

    async def connect(self) -> None:
        self._receiving = True
        if self._processor is None or self._processor.done():
            self._processor = asyncio.create_task(self._process_forever(), name=f"signal-in-{self.login_id}")
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = asyncio.create_task(self._stay_connected(), name=f"signal-{self.login_id}")
        self.expiry.start()

    async def _stay_connected(self) -> None:
        backoff = 1.0
        while self._receiving:
            try:
                await self._open()
                await self.host.set_login_state(self, LoginState.CONNECTED)
                backoff = 1.0
                assert self._rpc is not None
                await self._rpc.closed.wait()
                reason = f"the daemon connection ended: {self._rpc.close_reason}"
            except asyncio.CancelledError:
                raise
            except SignalRpcError as e:
                if e.unknown_account:
                    await self.host.set_login_state(
                        self, LoginState.BAD_CREDENTIALS, "the signal-cli daemon no longer has this account"
                    )
                    return
                reason = f"the daemon refused to subscribe: {e.message}"
            except DaemonUnavailable as e:
                reason = str(e)
            except Exception as e:
                log.exception("Signal connection of %s failed", self.login_id)
                reason = f"internal error ({type(e).__name__})"
            self._subscription = None
            if not self._receiving:
                return
            await self.host.set_login_state(self, LoginState.TRANSIENT_ERROR, reason)
            # Jitter keeps logins from reconnecting in lockstep after a daemon restart.
            await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
            backoff = min(backoff * 2, 60)

    async def _open(self) -> None:
        if self._rpc is not None:
            await self._rpc.close()
        self._rpc = await SignalRpc.open(
            self.connector.config.daemon, self._on_notification, timeout=self.connector.config.startup_wait
        )
        self._subscription = await self.call("subscribeReceive")

    def _on_notification(self, method: str, params: Any) -> None:
        if method != "receive" or not isinstance(params, dict):
            return
        if "subscription" in params:
            result = params.get("result")
        else:
            result = params
            if not self._warned_mode:
                self._warned_mode = True
                log.warning(
                    "The signal-cli daemon receives without a subscription: run it with "
                    "'--receive-mode manual', or messages that arrive while the bridge is away are lost"
                )
        if not isinstance(result, dict) or result.get("account") not in (None, self.account):
            return
        if isinstance(result.get("exception"), dict):
            log.info("signal-cli could not read an incoming message: %s", result["exception"].get("message"))
        envelope = result.get("envelope")
        if isinstance(envelope, dict):
            self._inbox.put_nowait(envelope)

    # Receiving -----------------------------------------------------------------------------------

    async def _process_forever(self) -> None:
        while True:
            envelope = await self._inbox.get()
            try:
                for output in self.reader.read(envelope):
                    if isinstance(output, RemoteEvent):
                        self.queue(output)
                    else:
                        await self.hints.handle(output)
            except Exception:
                log.exception("Handling a Signal envelope failed")
            finally:
                self._inbox.task_done()

    def queue(self, event: RemoteEvent, attempt: int = 1) -> None:
        """Hand an event to the core; queue it again if handling fails (the daemon can't resend)."""
        future = self.host.queue_remote_event(self, event)
        self._inflight.add(future)

        def done(f: asyncio.Future[None]) -> None:
            self._inflight.discard(f)
            if f.cancelled() or f.exception() is None:
                return
            if attempt >= MAX_EVENT_ATTEMPTS or "shutting down" in str(f.exception()):
                log.error("Giving up on a %s in %s: %s", type(event).__name__, event.chat_id, f.exception())
                return
            asyncio.get_running_loop().call_later(2**attempt, self.queue, event, attempt + 1)

        future.add_done_callback(done)

    async def stop_receiving(self, timeout: float = 20) -> None:
        """Unsubscribe, then finish handling everything already received."""
        self._receiving = False
        if self._rpc is not None and self._subscription is not None and not self._rpc.closed.is_set():
            with contextlib.suppress(SignalRpcError, DaemonUnavailable):
                await self.call("unsubscribeReceive", {"subscription": self._subscription})
            # A notification written while the unsubscribe ran may still be on its way.
            await asyncio.sleep(0.2)
        self._subscription = None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._inbox.join(), timeout)
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=timeout)

    async def disconnect(self) -> None:
        await self.stop_receiving()
        for task in (self._supervisor, self._processor):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._supervisor = self._processor = None
        await self.expiry.stop()
        if self._rpc is not None:
            await self._rpc.close()
            self._rpc = None

    def _known_name(self, aci: str) -> str | None:
        return self.names.get(aci)

    async def _expire(self, chat_id: RemoteChatID, message_ids: list[RemoteMessageID]) -> None:
        futures = [
            self.host.queue_remote_event(self, RemoteDelete(chat_id=chat_id, message_id=m)) for m in message_ids
        ]
        for result in await asyncio.gather(*futures, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result

    def remember_sent(self, chat_id: RemoteChatID, timestamp: int) -> None:
        self.sent_at[timestamp] = chat_id
        while len(self.sent_at) > 5000:
            self.sent_at.popitem(last=False)

    # NetworkLogin ----------------------------------------------------------------------------------

    async def get_chat_info(self, chat_id: RemoteChatID) -> ChatInfo:
        info, group = await self.directory.chat_info(chat_id)
        if group is not None:
            # What the portal starts with: later group updates are compared with this.
            self.groups[chat_id] = {
                "members": list(info.members),
                "timer": int(group.get("messageExpirationTime") or 0),
            }
            await self.save()
        return info

    async def get_user_info(self, user_id: str) -> UserInfo:
        info = await self.directory.user_info(user_id)
        if info.display_name:
            self.names.setdefault(user_id, info.display_name)
        return info

    async def list_chats(self) -> list[ChatInfo]:
        return [await self.directory.group_info(group_chat_id(g["id"]), g) for g in await self.directory.groups()]

    async def send_message(self, chat_id: RemoteChatID, message: OutgoingMessage) -> SendResult:
        result = await self.outbox.send(chat_id, message)
        self.remember_sent(chat_id, result.timestamp_ms)
        if (seconds := self.timer_of(chat_id)) > 0:
            await self.expiry.add(chat_id, [result.message_id], result.timestamp_ms + seconds * 1000)
        return result

    def timer_of(self, chat_id: RemoteChatID) -> int:
        if chat_id in self.timers:
            return int(self.timers[chat_id])
        return int(self.groups.get(chat_id, {}).get("timer", 0))

    async def edit_message(self, chat_id: RemoteChatID, message_id: RemoteMessageID, text: FormattedText) -> None:
        await self.outbox.edit(chat_id, message_id, text)

    async def delete_message(self, chat_id: RemoteChatID, message_id: RemoteMessageID) -> None:
        await self.outbox.delete(chat_id, message_id)

    async def send_reaction(self, chat_id: RemoteChatID, message_id: RemoteMessageID, emoji: str) -> None:
        await self.outbox.react(chat_id, message_id, emoji, remove=False)

    async def remove_reaction(self, chat_id: RemoteChatID, message_id: RemoteMessageID, emoji: str) -> None:
        await self.outbox.react(chat_id, message_id, emoji, remove=True)

    async def set_typing(self, chat_id: RemoteChatID, typing: bool) -> None:
        await self.outbox.typing(chat_id, typing)

    async def mark_read(self, chat_id: RemoteChatID, message_id: RemoteMessageID) -> None:
        await self.outbox.read(chat_id, message_id)

    async def update_chat(self, chat_id: RemoteChatID, change: ChatChange) -> None:
        params: dict[str, Any] = {
            "name": change.name,
            "description": change.topic,
            "avatar": data_uri(change.avatar) if change.avatar is not None else None,
            "member": list(change.add_members) or None,
            "removeMember": list(change.remove_members) or None,
        }
        await self.outbox.update_group(chat_id, **{k: v for k, v in params.items() if v is not None})
        if change.add_members or change.remove_members:
            # Our own change doesn't come back as an update: keep the member list current.
            state = self.groups.setdefault(chat_id, {})
            members = [m for m in state.get("members", []) if m not in change.remove_members]
            state["members"] = members + [m for m in change.add_members if m not in members]
            await self.save()

    async def create_group(self, title: str, members: list[str]) -> tuple[RemoteChatID, str | None]:
        return group_chat_id(await self.outbox.create_group(title, members)), None

    async def logout(self) -> None:
        """Unregister this linked device and remove the account from the daemon.

        A linked device can't remove itself from the phone's device list: the user does
        that on the phone (Settings, Linked devices), as the bot says.
        """
        for method, params in (("unregister", {}), ("deleteLocalAccountData", {"ignoreRegistered": True})):
            try:
                await self.call(method, params)
            except (SignalRpcError, DaemonUnavailable) as e:
                log.warning("Signal logout step %s failed: %s", method, e)
        self._receiving = False
        self._subscription = None  # the daemon dropped it with the account
