"""Incoming Telegram updates of every kind, and the login's calls to Telegram."""

from __future__ import annotations

import asyncio

from telethon.tl import types as tl

from bridge.core.connector import LoginComplete, LoginPrompt, LoginState, OutgoingMedia, OutgoingMessage
from bridge.core.events import (
    MediaKind, RemoteDelete, RemoteEdit, RemoteMessage, RemoteReaction, RemoteReadReceipt, RemoteTyping,
)
from bridge.core.ids import RemoteChatID, RemoteMessageID, UserID
from bridge.core.text import Entity, EntityType, FormattedText, MentionTarget
from tests.telegram.conftest import logged_in
from tests.telegram.fake.tlmake import make


def first(host, kind, predicate=lambda e: True):
    return lambda: next((e for e in host.events if isinstance(e, kind) and predicate(e)), None)


async def test_edits_deletions_reactions_typing_and_read_receipts_arrive(connector, fake, host) -> None:
    alice = fake.add_account("Alice", phone="+4915200000001")
    bob = fake.add_account("Bob", phone="+4915200000002")
    login = await logged_in(connector, fake, alice)
    try:
        bob_msg = await fake.send(bob, alice, "first")
        alice_msg = fake.copy_id(alice, bob, bob_msg)
        chat = f"dm:{alice.id}:{bob.id}"
        await host.wait_for(first(host, RemoteMessage, lambda e: e.content.text.text == "first"))
        await fake.edit(bob, bob.id, bob_msg, "first, edited")
        edit = await host.wait_for(first(host, RemoteEdit))
        assert (edit.chat_id, edit.message_id, edit.content.text.text) == (chat, str(alice_msg), "first, edited")
        await fake.react(bob, bob.id, bob_msg, "👍")
        reaction = await host.wait_for(first(host, RemoteReaction))
        assert (reaction.emoji, reaction.sender.user_id, reaction.removed) == ("👍", str(bob.id), False)
        await fake.react(bob, bob.id, bob_msg, None)
        await host.wait_for(first(host, RemoteReaction, lambda e: e.removed))
        await fake.typing(bob, alice)
        typing = await host.wait_for(first(host, RemoteTyping))
        assert typing.chat_id == chat and typing.typing
        mine = await fake.send(alice, bob, "from my phone")
        own = await host.wait_for(first(host, RemoteMessage, lambda e: e.content.text.text == "from my phone"))
        assert own.sender.is_from_me and own.sender.user_id == str(alice.id)
        await fake.read(bob, alice, fake.copy_id(bob, alice, mine))
        receipt = await host.wait_for(first(host, RemoteReadReceipt))
        assert receipt.up_to == str(mine) and receipt.sender.user_id == str(bob.id)
        await fake.delete(bob.id, bob_msg)
        deleted = await host.wait_for(first(host, RemoteDelete))
        assert (deleted.chat_id, deleted.message_id) == (chat, str(alice_msg))
    finally:
        await login.disconnect()


async def test_media_location_contact_and_poll_arrive_in_readable_form(connector, fake, host) -> None:
    alice = fake.add_account("Alice", phone="+4915200000003")
    bob = fake.add_account("Bob", phone="+4915200000004")
    login = await logged_in(connector, fake, alice)
    try:
        jpeg = b"\xff\xd8fake-jpeg" * 100
        await fake.send(bob, alice, "look", media=make(tl.MessageMediaPhoto, photo=fake.photo(jpeg)))
        voice = fake.document(b"OggS-voice", "audio/ogg", [tl.DocumentAttributeAudio(duration=3, voice=True)])
        await fake.send(bob, alice, "", media=make(tl.MessageMediaDocument, document=voice))
        await fake.send(bob, alice, "", media=make(tl.MessageMediaGeo, geo=tl.GeoPoint(long=13.4, lat=52.5, access_hash=0)))
        await fake.send(bob, alice, "", media=tl.MessageMediaContact(
            phone_number="+4917000000000", first_name="Dora", last_name="", vcard="", user_id=0))
        photo = await host.wait_for(first(host, RemoteMessage, lambda e: e.content.text.text == "look"))
        assert photo.content.media.kind == MediaKind.IMAGE
        assert await photo.content.media.fetch() == jpeg
        note = await host.wait_for(first(host, RemoteMessage, lambda e: e.content.media is not None
                                         and e.content.media.kind == MediaKind.VOICE))
        assert await note.content.media.fetch() == b"OggS-voice" and note.content.media.duration_ms == 3000
        geo = await host.wait_for(first(host, RemoteMessage, lambda e: e.content.location is not None))
        assert (geo.content.location.latitude, geo.content.location.longitude) == (52.5, 13.4)
        contact = await host.wait_for(first(host, RemoteMessage, lambda e: "Dora" in e.content.text.text))
        assert contact.content.text.text == "Contact: Dora"  # no phone number unless the admin allows it
    finally:
        await login.disconnect()


async def test_sending_edit_delete_react_typing_read_and_media(connector, fake, host) -> None:
    alice = fake.add_account("Alice", phone="+4915200000005")
    bob = fake.add_account("Bob", phone="+4915200000006")
    login = await logged_in(connector, fake, alice)
    try:
        await fake.send(bob, alice, "hi")
        incoming = await host.wait_for(first(host, RemoteMessage, lambda e: e.content.text.text == "hi"))
        chat = RemoteChatID(incoming.chat_id)
        text = FormattedText("👋 Bob, see docs", (
            Entity(EntityType.MENTION, 2, 3, mention=MentionTarget(remote_user_id=str(bob.id))),
            Entity(EntityType.LINK, 11, 4, url="https://docs.example/"),
        ))
        result = await login.send_message(chat, OutgoingMessage(text=text, reply_to=incoming.message_id, txn_id="t1"))
        sent = alice.box[int(result.message_id)]
        assert sent.entities == [tl.MessageEntityMentionName(offset=3, length=3, user_id=bob.id),
                                 tl.MessageEntityTextUrl(offset=12, length=4, url="https://docs.example/")]
        assert sent.reply_to.reply_to_msg_id == int(incoming.message_id)
        await login.edit_message(chat, result.message_id, FormattedText("edited"))
        assert alice.box[int(result.message_id)].message == "edited"
        await login.send_reaction(chat, incoming.message_id, "❤")
        assert list(fake.reactions.values())[-1] == {alice.id: "❤"}
        await login.set_typing(chat, True)
        assert fake.typing_seen == (alice.id, bob.id, "SendMessageTypingAction")
        await login.mark_read(chat, incoming.message_id)
        assert fake.read_seen == (alice.id, bob.id, int(incoming.message_id))
        await login.delete_message(chat, result.message_id)
        assert int(result.message_id) not in alice.box
        png = b"\x89PNG-not-really" * 50
        media = OutgoingMedia(kind=MediaKind.FILE, mime_type="application/pdf", file_name="a.pdf", data=png)
        result = await login.send_message(chat, OutgoingMessage(text=FormattedText("doc"), media=media, txn_id="t2"))
        document = alice.box[int(result.message_id)].media.document
        assert fake.files[document.id] == png and document.mime_type == "application/pdf"
        history = await login.fetch_history(chat, 10)
        assert [e.content.text.text for e in history if isinstance(e, RemoteMessage)] == ["hi", "doc"]
    finally:
        await login.disconnect()


async def test_qr_login_refreshes_the_code_and_completes_after_a_scan(connector, fake, host) -> None:
    alice = fake.add_account("Alice", phone="+4915200000007")
    fake.qr_lifetime = 1
    try:
        process = connector.start_login(UserID("@alice:localhost"), "qr")
        first_prompt = await process.start()
        assert first_prompt.qr_data.startswith("tg://login?token=")
        refreshed = await host.wait_for(lambda: next((p for p in host.progress if isinstance(p, LoginPrompt)), None))
        assert refreshed.qr_data != first_prompt.qr_data
        fake.qr_lifetime = 30
        await host.wait_for(lambda: len([p for p in host.progress if isinstance(p, LoginPrompt)]) >= 2, timeout=5)
        token = list(fake.login_tokens)[-1]
        await fake.scan_qr(token, alice)
        done = await host.wait_for(lambda: next((p for p in host.progress if isinstance(p, LoginComplete)), None))
        assert done.record.login_id == str(alice.id)
    finally:
        fake.qr_lifetime = 30


async def test_revoked_session_sets_bad_credentials(connector, fake, host) -> None:
    alice = fake.add_account("Alice", phone="+4915200000008")
    login = await logged_in(connector, fake, alice)
    try:
        fake.revoke_sessions(alice)
        await host.wait_for(lambda: login.record.state == LoginState.BAD_CREDENTIALS, timeout=20)
        assert "revoked" in (login.record.error or "")
    finally:
        await login.disconnect()


async def test_network_loss_reconnects_and_fetches_what_was_missed(connector, fake, host) -> None:
    alice = fake.add_account("Alice", phone="+4915200000009")
    bob = fake.add_account("Bob", phone="+4915200000010")
    login = await logged_in(connector, fake, alice)
    try:
        fake.offline_users.add(alice.id)  # the push is lost on a link that is dying...
        await fake.send(bob, alice, "sent during the outage")
        fake.offline_users.discard(alice.id)
        fake.server.drop_all_connections()  # ...and then the connection breaks
        event = await host.wait_for(first(host, RemoteMessage, lambda e: e.content.text.text == "sent during the outage"), timeout=20)
        assert event.sender.user_id == str(bob.id)
    finally:
        await login.disconnect()


async def test_channel_posts_are_read_only_and_forum_topics_get_their_own_portals(connector, fake, host) -> None:
    alice = fake.add_account("Alice", phone="+4915200000011")
    owner = fake.add_account("Olga", phone="+4915200000012")
    news = fake.add_channel("News", owner, [owner, alice], broadcast=True)
    forum = fake.add_channel("Club", owner, [owner, alice], forum=True)
    topic = fake.add_topic(forum, "Gardening", owner)
    login = await logged_in(connector, fake, alice)
    try:
        await fake.send(owner, news, "breaking")
        post = await host.wait_for(first(host, RemoteMessage, lambda e: e.content.text.text == "breaking"))
        assert post.chat_id == f"channel:{news.id}" and post.sender.user_id == f"channel-{news.id}"
        info = await login.get_chat_info(RemoteChatID(post.chat_id))
        assert info.read_only and info.name == "News"
        await fake.send(owner, forum, "roses", topic=topic)
        await fake.send(owner, forum, "general chat")
        rose = await host.wait_for(first(host, RemoteMessage, lambda e: e.content.text.text == "roses"))
        general = await host.wait_for(first(host, RemoteMessage, lambda e: e.content.text.text == "general chat"))
        assert rose.chat_id == f"channel:{forum.id}:topic:{topic}" and rose.reply_to is None
        assert general.chat_id == f"channel:{forum.id}"
        topic_info = await login.get_chat_info(RemoteChatID(rose.chat_id))
        assert topic_info.name == "Club / Gardening" and not topic_info.read_only
        sent = await login.send_message(RemoteChatID(rose.chat_id), OutgoingMessage(text=FormattedText("me too"), txn_id="t3"))
        reply = forum.messages[int(sent.message_id)].reply_to
        assert reply.forum_topic and reply.reply_to_msg_id == topic
    finally:
        await login.disconnect()
