"""Matrix room changes applied to a Telegram group: title, description, photo, members.

Basic groups and supergroups/channels use different requests; Telegram checks the
account's admin rights itself, and a refusal becomes a permanent :class:`SendError` with
a reason the Matrix user can act on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from telethon import functions
from telethon.tl import types as tl

from ...core.connector import ChatChange, SendError, Unsupported
from .ids import GENERAL_TOPIC, ChatRef

# Telegram's refusals that mean "you may not do this here", as the user should read them.
_REFUSALS = {
    "CHAT_ADMIN_REQUIRED": "you are not an admin of this Telegram chat with the right to do this",
    "CHAT_WRITE_FORBIDDEN": "you can't change this Telegram chat",
    "RIGHT_FORBIDDEN": "you are not an admin of this Telegram chat with the right to do this",
    "USER_PRIVACY_RESTRICTED": "this person's Telegram privacy settings don't allow adding them",
    "USER_NOT_MUTUAL_CONTACT": "this person must have you as a contact before you can add them",
    "USERS_TOO_MUCH": "the Telegram chat is full",
    "USER_CHANNELS_TOO_MUCH": "this person is in too many Telegram chats to be added",
    "CHAT_ABOUT_TOO_LONG": "the description is too long for Telegram",
    "CHAT_TITLE_EMPTY": "Telegram chats need a title",
    "PHOTO_INVALID": "Telegram can't use this image as the chat photo",
    "PHOTO_CROP_SIZE_SMALL": "the image is too small for a Telegram chat photo",
}
_NOTHING_CHANGED = ("CHAT_NOT_MODIFIED", "CHAT_ABOUT_NOT_MODIFIED", "USER_ALREADY_PARTICIPANT",
                    "USER_NOT_PARTICIPANT")

Call = Callable[[Any], Awaitable[Any]]


def explain(error: SendError) -> SendError | None:
    """The refusal as the user should read it; None when the chat already matches."""
    if any(code in error.reason for code in _NOTHING_CHANGED):
        return None
    for code, reason in _REFUSALS.items():
        if code in error.reason:
            return SendError(reason, permanent=True)
    return error


async def apply_change(
    chat: ChatRef,
    change: ChatChange,
    *,
    call: Call,
    input_peer: Any,
    input_user: Callable[[str], Any],
    upload: Callable[[bytes, str], Awaitable[Any]],
) -> None:
    """Send the requests for ``change`` to the group ``chat`` (``input_peer`` is its peer).

    ``call`` sends one request and raises :class:`SendError`; ``input_user`` resolves a
    remote user id to an InputUser (or None); ``upload`` uploads a file's bytes.
    """
    if chat.kind == "dm":
        raise Unsupported("changing a private chat")
    if chat.topic_id and chat.topic_id != GENERAL_TOPIC:
        raise Unsupported("changing one forum topic's room")  # the room is a topic, not the group

    async def send(request: Any) -> None:
        try:
            await call(request)
        except SendError as e:
            explained = explain(e)
            if explained is not None:
                raise explained from None

    def user(remote_id: str) -> Any:
        found = input_user(remote_id)
        if found is None:
            raise SendError("this Telegram account doesn't know that person yet", permanent=True)
        return found

    group = chat.kind == "group"
    if change.name is not None:
        await send(functions.messages.EditChatTitleRequest(chat.peer_id, change.name) if group
                   else functions.channels.EditTitleRequest(input_peer, change.name))
    if change.topic is not None:
        await send(functions.messages.EditChatAboutRequest(input_peer, change.topic))
    if change.avatar is not None:
        uploaded = await upload(change.avatar.data, change.avatar.file_name or "avatar.jpg")
        photo = tl.InputChatUploadedPhoto(file=uploaded)
        await send(functions.messages.EditChatPhotoRequest(chat.peer_id, photo) if group
                   else functions.channels.EditPhotoRequest(input_peer, photo))
    for remote_id in change.add_members:
        await send(functions.messages.AddChatUserRequest(chat.peer_id, user(remote_id), fwd_limit=50) if group
                   else functions.channels.InviteToChannelRequest(input_peer, [user(remote_id)]))
    for remote_id in change.remove_members:
        if group:
            await send(functions.messages.DeleteChatUserRequest(chat.peer_id, user(remote_id)))
            continue
        # A kick from a supergroup is a ban lifted right away, so the person may come back.
        found = user(remote_id)
        member = tl.InputPeerUser(found.user_id, found.access_hash)
        await send(functions.channels.EditBannedRequest(
            input_peer, member, tl.ChatBannedRights(until_date=None, view_messages=True)))
        await send(functions.channels.EditBannedRequest(input_peer, member, tl.ChatBannedRights(until_date=None)))
