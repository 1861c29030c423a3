"""Envelopes shaped like the ones signal-cli 0.13.19 writes in ``receive`` notifications.

Field names and nesting follow signal-cli's ``JsonMessageEnvelope``, ``JsonDataMessage``,
``JsonEditMessage``, ``JsonSyncMessage`` (whose ``sentMessage`` flattens a data message),
``JsonReceiptMessage`` and ``JsonTypingMessage``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Person:
    """Someone on Signal (a contact of the bridged account)."""

    name: str
    aci: str = field(default_factory=lambda: str(uuid.uuid4()))
    number: str | None = field(default_factory=lambda: "+49160" + str(uuid.uuid4().int)[:8])
    hides_number: bool = False


def envelope(sender: Person, timestamp: int, **content: Any) -> dict[str, Any]:
    number = None if sender.hides_number else sender.number
    return {
        # A sender who hides their number: sourceNumber null, source is the ACI.
        "source": number or sender.aci,
        "sourceNumber": number,
        "sourceUuid": sender.aci,
        "sourceName": sender.name,
        "sourceDevice": 1,
        "timestamp": timestamp,
        "serverReceivedTimestamp": timestamp + 20,
        "serverDeliveredTimestamp": timestamp + 40,
        **content,
    }


def group_info(group_id: str, name: str = "", update: bool = False) -> dict[str, Any]:
    return {"groupId": group_id, "groupName": name, "revision": 3, "type": "UPDATE" if update else "DELIVER"}


def data(
    timestamp: int,
    text: str | None = None,
    *,
    group: str | None = None,
    update: bool = False,
    styles: list[dict[str, Any]] | None = None,
    mentions: list[dict[str, Any]] | None = None,
    quote: dict[str, Any] | None = None,
    attachments: list[dict[str, Any]] | None = None,
    sticker: dict[str, Any] | None = None,
    reaction: dict[str, Any] | None = None,
    remote_delete: int | None = None,
    expires: int = 0,
    view_once: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {"timestamp": timestamp, "message": text, "expiresInSeconds": expires, "viewOnce": view_once}
    if reaction is not None:
        out["reaction"] = reaction
    if quote is not None:
        out["quote"] = quote
    if mentions:
        out["mentions"] = mentions
    if attachments:
        out["attachments"] = attachments
    if sticker is not None:
        out["sticker"] = sticker
    if remote_delete is not None:
        out["remoteDelete"] = {"timestamp": remote_delete}
    if styles:
        out["textStyles"] = styles
    if group is not None:
        out["groupInfo"] = group_info(group, update=update)
    return out


def message(sender: Person, timestamp: int, text: str | None = None, **kwargs: Any) -> dict[str, Any]:
    return envelope(sender, timestamp, dataMessage=data(timestamp, text, **kwargs))


def edit(sender: Person, timestamp: int, target: int, text: str, **kwargs: Any) -> dict[str, Any]:
    return envelope(sender, timestamp, editMessage={"targetSentTimestamp": target, "dataMessage": data(timestamp, text, **kwargs)})


def reaction(sender: Person, timestamp: int, emoji: str, author: str, target: int, remove: bool = False, **kwargs: Any) -> dict[str, Any]:
    body = {"emoji": emoji, "targetAuthor": author, "targetAuthorNumber": None, "targetAuthorUuid": author,
            "targetSentTimestamp": target, "isRemove": remove}
    return message(sender, timestamp, None, reaction=body, **kwargs)


def quote(author: str, target: int, text: str = "") -> dict[str, Any]:
    return {"id": target, "author": author, "authorNumber": None, "authorUuid": author, "text": text,
            "mentions": [], "attachments": [], "textStyles": []}


def attachment(attachment_id: str, content_type: str, size: int, filename: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"contentType": content_type, "filename": filename, "id": attachment_id, "size": size,
            "width": extra.get("width"), "height": extra.get("height"), "caption": None, "uploadTimestamp": 1}


def typing(sender: Person, timestamp: int, started: bool, group: str | None = None) -> dict[str, Any]:
    return envelope(sender, timestamp, typingMessage={"action": "STARTED" if started else "STOPPED",
                                                      "timestamp": timestamp, "groupId": group})


def receipt(sender: Person, timestamp: int, timestamps: list[int], read: bool = True) -> dict[str, Any]:
    return envelope(sender, timestamp, receiptMessage={"when": timestamp, "isDelivery": not read, "isRead": read,
                                                       "isViewed": False, "timestamps": timestamps})


def sent_from_phone(own: Person, timestamp: int, text: str, destination: str | None = None, group: str | None = None) -> dict[str, Any]:
    sent = {"destination": destination, "destinationNumber": None, "destinationUuid": destination,
            **data(timestamp, text, group=group)}
    return envelope(own, timestamp, syncMessage={"sentMessage": sent})
