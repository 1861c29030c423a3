"""Matrix room changes applied to a WhatsApp group: name, topic (description), photo, members.

WhatsApp checks the account's rights itself (only admins add or remove people; only
admins edit a group whose info is locked); a refusal becomes a permanent
:class:`SendError` the Matrix user can act on.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import Any

from ...core.connector import ChatChange, SendError
from . import neonize_api as api
from .ids import Jid

# whatsmeow reports a refused info query as "info query returned status 403: forbidden".
_NOT_ALLOWED = ("403", "forbidden", "401", "not-authorized", "not-admin")
# Per-person codes of a participant change; 409 (already in the group) needs no retry.
_PARTICIPANT_ERRORS = {
    403: "their WhatsApp privacy settings don't allow adding them (they need an invite link)",
    404: "they are not in the group",
    408: "they left the group recently and can only come back by invite link",
    500: "the group is full",
}
_NOTHING_TO_DO = {409}


def _refusal(what: str, error: Exception) -> SendError:
    text = str(error) or type(error).__name__
    if any(word in text.lower() for word in _NOT_ALLOWED):
        return SendError(f"you are not an admin of this WhatsApp group, so you can't {what}", permanent=True)
    transient = any(word in text.lower() for word in ("timed out", "timeout", "not connected", "websocket"))
    return SendError(f"WhatsApp refused to {what}: {text}", permanent=not transient)


def as_jpeg(data: bytes) -> bytes:
    """WhatsApp takes group photos as JPEG only, at most 640 pixels a side."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        image.thumbnail((640, 640))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=90)
        return out.getvalue()


async def apply_change(
    client: Any, group: Jid, change: ChatChange, person_jid: Callable[[str], Awaitable[Jid]]
) -> None:
    """Send the calls for ``change`` to the group ``group`` through a neonize client."""
    target = api.to_proto(group)

    async def attempt(what: str, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except SendError:
            raise
        except Exception as e:
            raise _refusal(what, e) from None

    if change.name is not None:
        await attempt("rename it", client.set_group_name(target, change.name))
    if change.topic is not None:
        # Empty ids: whatsmeow looks up the current topic's id and makes a new one.
        await attempt("change its description", client.set_group_topic(target, "", "", change.topic))
    if change.avatar is not None:
        try:
            photo = await asyncio.to_thread(as_jpeg, change.avatar.data)
        except Exception:
            raise SendError("WhatsApp can't use this image as the group photo", permanent=True) from None
        await attempt("change its photo", client.set_group_photo(target, photo))
    for members, action, what in (
        (change.add_members, api.ParticipantChange.ADD, "add people"),
        (change.remove_members, api.ParticipantChange.REMOVE, "remove people"),
    ):
        if not members:
            continue
        jids = [api.to_proto(await person_jid(m)) for m in members]
        result = await attempt(what, client.update_group_participants(target, jids, action))
        for participant in result:
            code = int(participant.Error or 0)
            if code and code not in _NOTHING_TO_DO:
                reason = _PARTICIPANT_ERRORS.get(code, f"WhatsApp error {code}")
                raise SendError(f"WhatsApp could not {what}: {reason}", permanent=True)
