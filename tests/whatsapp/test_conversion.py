"""Pure conversions: ids, and real WhatsApp protobufs classified for the core."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa

from bridge.core.connector import OutgoingMedia
from bridge.core.events import MediaKind
from bridge.networks.whatsapp import content, outgoing
from bridge.networks.whatsapp.format import MentionedUser, Rendered
from bridge.networks.whatsapp.ids import IdScheme, Jid

IDS = IdScheme(b"0123456789abcdef0123456789abcdef")


async def _never(message: wa.Message) -> bytes:
    raise AssertionError("nothing is downloaded while classifying")


@given(st.from_regex(r"[1-9][0-9]{6,14}", fullmatch=True))
def test_phone_numbers_never_appear_in_ids(number: str) -> None:
    user_id = IDS.user_id(Jid(number, "s.whatsapp.net"))
    assert number not in user_id and user_id.startswith("pn.")
    assert user_id == IDS.user_id(Jid(number, "s.whatsapp.net"))  # stable
    assert user_id != IdScheme(b"another-secret-of-32-bytes......").user_id(Jid(number, "s.whatsapp.net"))


def test_lid_ids_are_self_describing_and_chat_ids_round_trip() -> None:
    lid = IDS.user_id(Jid("123456789", "lid"))
    assert lid == "lid.123456789"
    assert IdScheme.jid_of_self_describing(lid) == Jid("123456789", "lid")
    dm = IdScheme.direct_chat_id("lid.1", lid)
    assert IdScheme.parse_chat_id(dm) == ("direct", lid)
    assert IDS.group_chat_id(Jid("120363000000000001", "g.us")) == "g.120363000000000001"
    legacy = IDS.group_chat_id(Jid("4915112345678-1600000000", "g.us"))
    assert "4915" not in legacy and IdScheme.parse_chat_id(legacy) == ("group", None)
    assert IdScheme.parse_message_id(IdScheme.message_id(lid, "3EB0AB")) == (lid, "3EB0AB")
    assert Jid.parse("123:7@lid") == Jid("123", "lid")


def test_wrappers_are_removed_and_kinds_told_apart() -> None:
    inner = wa.Message(extendedTextMessage=wa.ExtendedTextMessage(text="_hi_ @491512"))
    wrapped = wa.Message(ephemeralMessage=wa.FutureProofMessage(
        message=wa.Message(viewOnceMessageV2=wa.FutureProofMessage(message=inner))))  # fmt: skip
    result = content.classify(wrapped, {"491512": MentionedUser("lid.9", "Ann")}, _never)
    assert result.kind is content.Kind.MESSAGE
    assert result.content.text.text == "hi @Ann"
    key = MessageKey(remoteJID="1@g.us", fromMe=False, ID="X", participant="9@lid")
    assert content.classify(wa.Message(reactionMessage=wa.ReactionMessage(key=key, text="")), {}, _never).kind is content.Kind.REACTION
    revoke = wa.Message(protocolMessage=wa.ProtocolMessage(type=wa.ProtocolMessage.REVOKE, key=key))
    assert content.classify(revoke, {}, _never).target.ID == "X"
    noise = wa.Message(senderKeyDistributionMessage=wa.SenderKeyDistributionMessage(groupID="1@g.us"))
    assert content.classify(noise, {}, _never).kind is content.Kind.IGNORE
    poll = wa.Message(pollCreationMessageV3=wa.PollCreationMessage(name="Lunch?"))
    shown = content.classify(poll, {}, _never)
    assert shown.content.notice and "poll" in shown.content.text.text


def test_media_is_described_without_downloading() -> None:
    doc = wa.Message(documentWithCaptionMessage=wa.FutureProofMessage(message=wa.Message(
        documentMessage=wa.DocumentMessage(fileName="plan.pdf", mimetype="application/pdf",
                                           fileLength=1234, caption="the plan"))))  # fmt: skip
    result = content.classify(doc, {}, _never)
    media = result.content.media
    assert (media.kind, media.file_name, media.size, result.content.text.text) == (
        MediaKind.FILE, "plan.pdf", 1234, "the plan")
    sticker = content.classify(wa.Message(stickerMessage=wa.StickerMessage(mimetype="image/webp")), {}, _never)
    assert sticker.content.media.kind is MediaKind.STICKER


@pytest.mark.parametrize("kind,field", [
    (MediaKind.IMAGE, "imageMessage"), (MediaKind.VIDEO, "videoMessage"), (MediaKind.VOICE, "audioMessage"),
    (MediaKind.FILE, "documentMessage"), (MediaKind.STICKER, "stickerMessage"),
])  # fmt: skip
def test_outgoing_media_points_at_the_upload(kind: MediaKind, field: str) -> None:
    from neonize.proto import Neonize_pb2 as neo

    mime = "image/webp" if kind is MediaKind.STICKER else "application/octet-stream"
    media = OutgoingMedia(kind=kind, mime_type=mime, file_name="f.bin", data=b"abc", duration_ms=2500)
    upload = neo.UploadResponse(url="https://x", DirectPath="/d", MediaKey=b"k", FileSHA256=b"s",
                                FileEncSHA256=b"e", FileLength=3)  # fmt: skip
    quote = outgoing.Quote("3EB0", Jid("5", "lid"))
    message = outgoing.media_message(media, upload, Rendered(""), quote)
    part = getattr(message, field)
    assert (part.directPath, part.fileLength, part.contextInfo.stanzaID) == ("/d", 3, "3EB0")
    if kind is MediaKind.VOICE:
        assert part.PTT and part.seconds == 2


async def test_receipts_and_typing_from_whatsapp_become_core_events() -> None:
    from neonize.proto import Neonize_pb2 as neo

    from bridge.core.events import RemoteReadReceipt, RemoteTyping
    from bridge.networks.whatsapp.config import WhatsAppConfig
    from bridge.networks.whatsapp.incoming import Incoming
    from bridge.networks.whatsapp.people import People

    people = People(IDS, WhatsAppConfig(), lambda: None)  # LIDs need no lookups
    incoming = Incoming("lid.1", lambda: {"1"}, people, _never, None, {})  # type: ignore[arg-type]
    chat = neo.JID(User="120363000000000009", Server="g.us")
    reader = neo.JID(User="77", Server="lid")
    src = neo.MessageSource(Chat=chat, Sender=reader, IsGroup=True)
    receipt = neo.Receipt(MessageSource=src, MessageIDs=["3EB0A", "3EB0B"], Type=neo.Receipt.READ)
    [event] = await incoming.receipt(receipt)
    assert isinstance(event, RemoteReadReceipt)
    assert (event.chat_id, event.sender.user_id, event.up_to) == ("g.120363000000000009", "lid.77", "lid.1.3EB0B")
    delivered = neo.Receipt(MessageSource=src, MessageIDs=["3EB0A"], Type=neo.Receipt.DELIVERED)
    assert await incoming.receipt(delivered) == []
    typing = neo.ChatPresence(MessageSource=src, State=neo.ChatPresence.COMPOSING, Media=neo.ChatPresence.TEXT)
    [event] = await incoming.typing(typing)
    assert isinstance(event, RemoteTyping) and event.typing and event.sender.user_id == "lid.77"
