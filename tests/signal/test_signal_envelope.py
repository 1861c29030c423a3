"""signal-cli envelopes -> remote events and hints (pure conversion, no daemon)."""

from __future__ import annotations

import uuid

from bridge.core.events import MediaKind, Sender, RemoteEdit, RemoteMessage, RemoteReaction, RemoteTyping
from bridge.networks.signal.envelope import (
    EnvelopeReader,
    Expiring,
    GroupChanged,
    MessageDeleted,
    NameSeen,
    OwnMessageSeen,
    PartsSent,
    ReceiptSeen,
    TimerSeen,
)
from bridge.networks.signal.ids import direct_chat_id, group_chat_id, message_id, parse_chat_id, parse_message_id
from tests.signal import envelopes as env_
from tests.signal.envelopes import Person

OWN = str(uuid.uuid4())


class NoMedia:
    def attachment(self, attachment_id: str):
        return lambda: None

    def sticker(self, pack_id: str, sticker_id: int):
        return lambda: None


def read(envelope: dict) -> list:
    return EnvelopeReader(OWN, NoMedia(), lambda aci: None).read(envelope)


def test_a_sender_who_hides_their_number_is_keyed_by_aci_and_their_chat_is_per_login() -> None:
    carol = Person("Carol", hides_number=True)
    out = read(env_.message(carol, 1000, "hi"))
    message = next(o for o in out if isinstance(o, RemoteMessage))
    assert message.sender.user_id == carol.aci and message.message_id == f"1000:{carol.aci}"
    assert message.chat_id == direct_chat_id(OWN, carol.aci)
    assert parse_chat_id(message.chat_id, OWN).peer == carol.aci
    assert parse_chat_id(message.chat_id, str(uuid.uuid4())) is None, "another login can't use this chat id"
    assert NameSeen(carol.aci, "Carol") in out


def test_a_pni_only_sender_is_skipped() -> None:
    envelope = env_.message(Person("X"), 5, "hi")
    envelope.update(sourceUuid=None, source="PNI:" + str(uuid.uuid4()))
    assert read(envelope) == []


def test_quote_reaction_edit_and_delete_name_messages_by_timestamp_and_author() -> None:
    bob = Person("Bob")
    reply = next(o for o in read(env_.message(bob, 20, "sure", quote=env_.quote(OWN, 10))) if isinstance(o, RemoteMessage))
    assert reply.reply_to == message_id(10, OWN)
    [reaction] = [o for o in read(env_.reaction(bob, 30, "👍", OWN, 10, remove=True)) if isinstance(o, RemoteReaction)]
    assert (reaction.message_id, reaction.emoji, reaction.removed) == (message_id(10, OWN), "👍", True)
    [edit] = [o for o in read(env_.edit(bob, 40, 20, "sure!")) if isinstance(o, RemoteEdit)]
    assert edit.message_id == message_id(20, bob.aci) and edit.content.text.text == "sure!"
    [delete] = [o for o in read(env_.message(bob, 50, None, remote_delete=20)) if isinstance(o, MessageDeleted)]
    assert delete.message_id == message_id(20, bob.aci)
    assert parse_message_id(delete.message_id).timestamp == 20


def test_a_group_update_is_a_hint_to_read_the_group_again() -> None:
    out = read(env_.message(Person("Bob"), 60, None, group="R3JvdXA=", update=True))
    assert len(out) == 2 and isinstance(out[1], GroupChanged)
    assert out[1].chat_id == group_chat_id("R3JvdXA=")


def test_a_timer_only_message_is_an_explicit_timer_change() -> None:
    bob = Person("Bob")
    [timer] = [o for o in read(env_.message(bob, 70, None, expires=604800)) if isinstance(o, TimerSeen)]
    assert timer.explicit and timer.seconds == 604800
    out = read(env_.message(bob, 80, "hush", expires=60))
    assert any(isinstance(o, TimerSeen) and not o.explicit and o.seconds == 60 for o in out)
    assert Expiring(direct_chat_id(OWN, bob.aci), (message_id(80, bob.aci),), 80, 60) in out


def test_several_attachments_become_parts_and_voice_notes_are_nameless_audio() -> None:
    bob = Person("Bob")
    out = read(env_.message(bob, 90, "look", attachments=[
        env_.attachment("a1", "image/jpeg", 10), env_.attachment("a2", "audio/aac", 5),
        env_.attachment("a3", "audio/mpeg", 5, "song.mp3"),
    ]))
    messages = [o for o in out if isinstance(o, RemoteMessage)]
    assert [m.message_id for m in messages] == [message_id(90, bob.aci, p) for p in range(3)]
    assert [m.content.media.kind for m in messages] == [MediaKind.IMAGE, MediaKind.VOICE, MediaKind.AUDIO]
    assert messages[0].content.text.text == "look" and messages[1].content.text.text == ""
    assert messages[0].content.media.file_name == "image.jpg"
    assert PartsSent(message_id(90, bob.aci), 3) in out


def test_view_once_media_is_not_bridged_but_announced() -> None:
    out = read(env_.message(Person("Bob"), 95, None, view_once=True, attachments=[env_.attachment("v", "image/jpeg", 3)]))
    [message] = [o for o in out if isinstance(o, RemoteMessage)]
    assert message.content.media is None and message.content.notice and "view-once" in message.content.text.text


def test_sent_from_the_phone_and_typing_and_receipts() -> None:
    me, bob = Person("Me", aci=OWN), Person("Bob")
    out = read(env_.sent_from_phone(me, 100, "from phone", destination=bob.aci))
    [message] = [o for o in out if isinstance(o, RemoteMessage)]
    assert message.sender.is_from_me and message.chat_id == direct_chat_id(OWN, bob.aci)
    assert OwnMessageSeen(message.chat_id, 100) in out
    [typing] = read(env_.typing(bob, 110, started=True, group="R3JvdXA="))[1:]
    assert isinstance(typing, RemoteTyping) and typing.typing and typing.chat_id == group_chat_id("R3JvdXA=")
    assert read(env_.receipt(bob, 120, [100, 101]))[1:] == [ReceiptSeen(Sender(bob.aci), (100, 101))]
    assert read(env_.receipt(bob, 130, [100], read=False))[1:] == [], "delivery receipts are not read receipts"
