"""Matrix -> Signal: the daemon calls behind a login's send, edit, delete, react and the rest.

Every daemon refusal becomes a :class:`SendError` whose reason the core shows in the room:
an untrusted identity (a contact's safety number changed), rate limiting, an unknown
account. Only a broken connection is retried.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from ...core.connector import OutgoingMedia, OutgoingMessage, SendError, SendResult
from ...core.ids import RemoteChatID, RemoteMessageID
from ...core.text import FormattedText
from .format import to_signal
from .ids import ChatRef, MessageRef, message_id, parse_chat_id, parse_message_id
from .rpc import (
    INVALID_PARAMS,
    IO_ERROR,
    RATE_LIMITED,
    UNTRUSTED_IDENTITY,
    DaemonUnavailable,
    SignalRpcError,
)

if TYPE_CHECKING:
    from .login import SignalLogin


def data_uri(media: OutgoingMedia) -> str:
    """signal-cli's attachment syntax: ``data:<mime>;filename=<name>;base64,<data>``."""
    name = "".join("_" if c in ";,=" else c for c in media.file_name) or "file"
    mime = media.mime_type if "/" in media.mime_type else "application/octet-stream"
    return f"data:{mime};filename={name};base64,{base64.b64encode(media.data).decode('ascii')}"


def _failed_results(result: Any) -> list[dict[str, Any]]:
    results = result.get("results") if isinstance(result, dict) else None
    return [r for r in results or [] if isinstance(r, dict) and r.get("type") not in (None, "SUCCESS")]


def explain(error: SignalRpcError) -> SendError:
    """A daemon error as the reason shown in Matrix, and whether retrying can help."""
    failures = _failed_results(error.response)
    if error.code == UNTRUSTED_IDENTITY or any(f.get("type") == "IDENTITY_FAILURE" for f in failures):
        return SendError(
            "Signal refused it because a safety number changed. Check the new safety number "
            "on your phone (tap the conversation's name, then 'View safety number'), then send again",
            permanent=True,
        )
    if error.code == RATE_LIMITED or any(f.get("type") == "RATE_LIMIT_FAILURE" for f in failures):
        retry = max((f.get("retryAfterSeconds") or 0 for f in failures), default=0)
        wait = f" for about {retry} s" if retry else ""
        captcha = any(f.get("token") for f in failures)
        hint = " and asks for a captcha (signal-cli submitRateLimitChallenge)" if captcha else ""
        return SendError(f"Signal is rate-limiting this account{wait}{hint}; send it again later", permanent=True)
    if error.code == INVALID_PARAMS and "account" in error.message.lower():
        return SendError("the signal-cli daemon no longer has this account; log in again", permanent=True)
    if error.code == IO_ERROR:
        return SendError(f"Signal could not be reached ({error.message})")
    return SendError(f"Signal refused it: {error.message}", permanent=True)


class Outbox:
    """Sends for one login. Every call goes through :meth:`SignalLogin.call`."""

    def __init__(self, login: SignalLogin) -> None:
        self.login = login

    def _chat(self, chat_id: RemoteChatID) -> ChatRef:
        ref = parse_chat_id(chat_id, self.login.login_id)
        if ref is None:
            raise SendError("this chat belongs to another Signal login", permanent=True)
        return ref

    def _message(self, value: RemoteMessageID) -> MessageRef:
        ref = parse_message_id(value)
        if ref is None:
            raise SendError("that message has no Signal counterpart", permanent=True)
        return ref

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        try:
            return await self.login.call(method, params)
        except SignalRpcError as e:
            raise explain(e) from None
        except DaemonUnavailable as e:
            raise SendError(f"can't reach the signal-cli daemon ({e})") from None

    def _text_params(self, text: FormattedText) -> dict[str, Any]:
        signal_text = to_signal(text)
        return {
            "message": signal_text.body,
            "textStyle": list(signal_text.text_styles) or None,
            "mention": list(signal_text.mentions) or None,
        }

    async def send(self, chat_id: RemoteChatID, message: OutgoingMessage) -> SendResult:
        ref = self._chat(chat_id)
        params: dict[str, Any] = {**ref.recipient_params(), **self._text_params(message.text)}
        if not params["message"]:
            params["message"] = None
        if message.media is not None:
            params["attachment"] = [data_uri(message.media)]
        if message.reply_to and (quoted := parse_message_id(message.reply_to)):
            params["quoteTimestamp"] = quoted.timestamp
            params["quoteAuthor"] = quoted.author
        result = await self.call("send", params)
        failures = _failed_results(result)
        results = result.get("results") if isinstance(result, dict) else None
        if failures and results and len(failures) == len(results):
            # A group send reports per-member results instead of an error; none got it.
            raise explain(SignalRpcError("send", 0, "no member could receive it", {"response": result}))
        timestamp = int(result["timestamp"])
        return SendResult(message_id(timestamp, self.login.login_id), timestamp)

    async def edit(self, chat_id: RemoteChatID, target: RemoteMessageID, text: FormattedText) -> None:
        ref, original = self._chat(chat_id), self._message(target)
        if original.author != self.login.login_id:
            raise SendError("only your own messages can be edited", permanent=True)
        params = {**ref.recipient_params(), **self._text_params(text), "editTimestamp": original.timestamp}
        await self.call("send", params)

    async def delete(self, chat_id: RemoteChatID, target: RemoteMessageID) -> None:
        ref, original = self._chat(chat_id), self._message(target)
        if original.author != self.login.login_id:
            raise SendError("only your own messages can be deleted for everyone", permanent=True)
        await self.call("remoteDelete", {**ref.recipient_params(), "targetTimestamp": original.timestamp})

    async def react(self, chat_id: RemoteChatID, target: RemoteMessageID, emoji: str, remove: bool) -> None:
        ref, original = self._chat(chat_id), self._message(target)
        await self.call(
            "sendReaction",
            {
                **ref.recipient_params(),
                "emoji": emoji,
                "targetAuthor": original.author,
                "targetTimestamp": original.timestamp,
                "remove": remove or None,
            },
        )

    async def typing(self, chat_id: RemoteChatID, typing: bool) -> None:
        await self.call("sendTyping", {**self._chat(chat_id).recipient_params(), "stop": (not typing) or None})

    async def read(self, chat_id: RemoteChatID, target: RemoteMessageID) -> None:
        self._chat(chat_id)
        original = self._message(target)
        if original.author == self.login.login_id:
            return  # no receipts for one's own messages
        await self.call(
            "sendReceipt",
            {"recipient": original.author, "targetTimestamp": [original.timestamp], "type": "read"},
        )

    async def update_group(self, chat_id: RemoteChatID, **changes: Any) -> None:
        """``updateGroup`` with ``name``, ``description``, ``avatar``, ``member`` or ``removeMember``."""
        ref = self._chat(chat_id)
        if ref.group_id is None:
            raise SendError("direct chats have no group settings", permanent=True)
        await self.call("updateGroup", {"groupId": ref.group_id, **changes})

    async def create_group(self, title: str, members: list[str]) -> str:
        result = await self.call("updateGroup", {"name": title, "member": members})
        return str(result["groupId"])
