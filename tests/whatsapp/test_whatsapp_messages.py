"""Messages both ways between WhatsApp (real neonize protobufs, fake client) and Matrix."""

from __future__ import annotations

import struct
import zlib

import pytest
from neonize.proto import Neonize_pb2 as neo
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa

from bridge.networks.whatsapp.neonize_api import GroupInfoEv
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import body_of
from tests.support.matrix_client import TestClient
from tests.whatsapp.fake_neonize import FakeWhatsApp
from tests.whatsapp.flows import link_account, message_event, source, text, until

pytestmark = pytest.mark.synapse


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def content(event) -> dict:
    return event.source.get("content") or {}


async def test_group_chat_both_ways(
    whatsapp_bridge: BridgeUnderTest, fake_whatsapp: FakeWhatsApp, matrix_user: TestClient
) -> None:
    env, world = whatsapp_bridge, fake_whatsapp
    me = world.account("4915111110001", "Mara")
    bob = world.account("4915111110002", "Bob")
    group = world.add_group("Garden club", [me, bob], topic="Roses")
    world.set_picture(group.JID, "grouppic1", png())
    _, client, login = await link_account(matrix_user, env, world, me)
    await client.wait_connected()

    # WhatsApp -> Matrix: formatting, a mention, the portal with name, topic and avatar.
    msg = text(f"*Hello* _garden_ @{me.lid} see ~old~", mentions=[f"{me.lid}@lid"])
    client.emit(message_event(source(group.JID, bob.lid_jid, alt=bob.pn_jid), msg, msg_id="3EB0A1", push_name="Bob"))
    portal = await matrix_user.wait_for_invite()
    await matrix_user.join(portal)
    first = await matrix_user.wait_for_event(portal, lambda e: "Hello" in body_of(e))
    bob_ghost = first.source["sender"]
    assert bob_ghost == f"@hubwhatsapp_whatsapp_lid.{bob.lid}:localhost"
    body = content(first)
    assert body["body"].startswith("Hello garden @Mara see old")
    assert "<strong>Hello</strong>" in body["formatted_body"] and "<del>old</del>" in body["formatted_body"]
    assert "4915" not in body["body"] + body["formatted_body"]
    room = matrix_user.nio.rooms[portal]
    assert room.name == "Garden club" and room.topic == "Roses"
    assert room.user_name(bob_ghost) == "Bob (WhatsApp)"
    state = await matrix_user.nio.room_get_state(portal)
    assert any(e["type"] == "m.room.avatar" for e in state.events)

    # Reply, edit, reaction and revoke from WhatsApp.
    client.emit(message_event(source(group.JID, bob.lid_jid), text("a reply", reply_to=("3EB0A1", f"{bob.lid}@lid")), msg_id="3EB0A2"))
    reply = await matrix_user.wait_for_event(portal, lambda e: body_of(e).endswith("a reply"))
    assert content(reply)["m.relates_to"]["m.in_reply_to"]["event_id"] == first.event_id
    edit = wa.Message(protocolMessage=wa.ProtocolMessage(
        type=wa.ProtocolMessage.MESSAGE_EDIT, key=MessageKey(remoteJID=f"{group.JID.User}@g.us", fromMe=True, ID="3EB0A2"),
        editedMessage=wa.Message(conversation="a better reply")))  # fmt: skip
    client.emit(message_event(source(group.JID, bob.lid_jid), wa.Message(editedMessage=wa.FutureProofMessage(message=edit)), msg_id="3EB0A3"))
    edited = await matrix_user.wait_for_event(portal, lambda e: content(e).get("m.relates_to", {}).get("rel_type") == "m.replace")
    assert content(edited)["m.new_content"]["body"] == "a better reply"
    assert content(edited)["m.relates_to"]["event_id"] == reply.event_id
    reaction = wa.Message(reactionMessage=wa.ReactionMessage(
        key=MessageKey(remoteJID=f"{group.JID.User}@g.us", fromMe=True, ID="3EB0A1"), text="🌹"))  # fmt: skip
    client.emit(message_event(source(group.JID, bob.lid_jid), reaction, msg_id="3EB0A4"))
    await matrix_user.wait_for_event(portal, lambda e: content(e).get("m.relates_to", {}).get("key") == "🌹")
    revoke = wa.Message(protocolMessage=wa.ProtocolMessage(
        type=wa.ProtocolMessage.REVOKE, key=MessageKey(remoteJID=f"{group.JID.User}@g.us", fromMe=True, ID="3EB0A2")))  # fmt: skip
    client.emit(message_event(source(group.JID, bob.lid_jid), revoke, msg_id="3EB0A5"))
    await matrix_user.wait_for_event(portal, lambda e: e.source.get("type") == "m.room.redaction"
                                     and e.source.get("redacts") == reply.event_id)  # fmt: skip

    # Media, voice note, location, contact card.
    world.media["/v/img1"] = png(4, 3)
    image = wa.Message(imageMessage=wa.ImageMessage(directPath="/v/img1", mimetype="image/png", caption="*roses*",
                                                    width=4, height=3, fileLength=len(world.media["/v/img1"])))  # fmt: skip
    client.emit(message_event(source(group.JID, bob.lid_jid), image, msg_id="3EB0B1"))
    got = await matrix_user.wait_for_event(portal, lambda e: content(e).get("msgtype") == "m.image")
    assert content(got)["body"] == "roses" and "<strong>roses</strong>" in content(got)["formatted_body"]
    assert await matrix_user.download(content(got)["url"]) == world.media["/v/img1"]
    world.media["/v/ptt1"] = b"OggS-voice"
    voice = wa.Message(audioMessage=wa.AudioMessage(directPath="/v/ptt1", mimetype="audio/ogg; codecs=opus", PTT=True, seconds=3))
    client.emit(message_event(source(group.JID, bob.lid_jid), voice, msg_id="3EB0B2"))
    got = await matrix_user.wait_for_event(portal, lambda e: content(e).get("msgtype") == "m.audio")
    assert "org.matrix.msc3245.voice" in content(got) and content(got)["info"]["duration"] == 3000
    location = wa.Message(locationMessage=wa.LocationMessage(degreesLatitude=52.52, degreesLongitude=13.405, name="Gate"))
    client.emit(message_event(source(group.JID, bob.lid_jid), location, msg_id="3EB0B3"))
    got = await matrix_user.wait_for_event(portal, lambda e: content(e).get("msgtype") == "m.location")
    assert content(got)["geo_uri"] == "geo:52.52,13.405"
    card = wa.Message(contactMessage=wa.ContactMessage(displayName="Gardener", vcard="BEGIN:VCARD\nFN:Gardener\nEND:VCARD"))
    client.emit(message_event(source(group.JID, bob.lid_jid), card, msg_id="3EB0B4"))
    got = await matrix_user.wait_for_event(portal, lambda e: content(e).get("msgtype") == "m.file")
    assert content(got)["filename"] == "Gardener.vcf"

    # The user's own message from the phone shows as theirs.
    client.emit(message_event(source(group.JID, me.pn_jid, from_me=True), text("sent from my phone"), msg_id="3EB0C1"))
    own = await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "sent from my phone")
    assert own.source["sender"] == f"@hubwhatsapp_whatsapp_lid.{me.lid}:localhost"

    # Group name, topic and members from WhatsApp.
    carla = world.account("4915111110003", "Carla")
    client.emit(GroupInfoEv(JID=group.JID, Sender=bob.lid_jid, Name=neo.GroupName(Name="Rose club"),
                            Topic=neo.GroupTopic(Topic="Only roses"), Join=[carla.lid_jid]))  # fmt: skip
    await matrix_user.wait_for_event(portal, lambda e: e.source.get("type") == "m.room.name"
                                     and content(e).get("name") == "Rose club")  # fmt: skip
    await matrix_user.wait_for_event(portal, lambda e: e.source.get("type") == "m.room.member"
                                     and e.source.get("state_key") == f"@hubwhatsapp_whatsapp_lid.{carla.lid}:localhost")  # fmt: skip

    # Matrix -> WhatsApp: formatting, reply, reaction, edit, redaction, image.
    sent_before = len(client.sent)
    await matrix_user.send_text(portal, "bold and italic", "<strong>bold</strong> and <em>italic</em>")
    await until(lambda: len(client.sent) > sent_before, what="the text on WhatsApp")
    to, message = client.sent[-1]
    assert to.User == group.JID.User and to.Server == "g.us"
    assert message.conversation == "*bold* and _italic_"
    await matrix_user.send_text(portal, "answer", reply_to=first.event_id)
    await until(lambda: len(client.sent) > sent_before + 1, what="the reply")
    quoted = client.sent[-1][1].extendedTextMessage
    assert quoted.text == "answer" and quoted.contextInfo.stanzaID == "3EB0A1"
    assert quoted.contextInfo.participant == f"{bob.lid}@lid"
    await matrix_user.react(portal, first.event_id, "👍")
    await until(lambda: client.sent[-1][1].HasField("reactionMessage"), what="the reaction")
    key = client.sent[-1][1].reactionMessage.key
    assert (key.ID, key.fromMe, key.participant) == ("3EB0A1", False, f"{bob.lid}@lid")
    mine = await matrix_user.send_text(portal, "typo")
    await until(lambda: client.sent[-1][1].conversation == "typo", what="the message to edit")
    sent_id = None
    await matrix_user.send_content(portal, {
        "msgtype": "m.text", "body": "* fixed", "m.new_content": {"msgtype": "m.text", "body": "fixed"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": mine},
    })  # fmt: skip
    await until(lambda: client.sent[-1][1].HasField("editedMessage"), what="the edit")
    inner = client.sent[-1][1].editedMessage.message.protocolMessage
    assert inner.type == wa.ProtocolMessage.MESSAGE_EDIT and inner.editedMessage.conversation == "fixed"
    sent_id = inner.key.ID
    await matrix_user.redact(portal, mine)
    await until(lambda: client.sent[-1][1].HasField("protocolMessage"), what="the revoke")
    revoked = client.sent[-1][1].protocolMessage
    assert revoked.type == wa.ProtocolMessage.REVOKE and revoked.key.ID == sent_id and revoked.key.fromMe
    mxc = await matrix_user.upload(png(3, 3), "image/png", "photo.png")
    await matrix_user.send_content(portal, {"msgtype": "m.image", "body": "photo.png", "url": mxc,
                                            "info": {"mimetype": "image/png", "w": 3, "h": 3}})  # fmt: skip
    await until(lambda: client.sent[-1][1].HasField("imageMessage"), what="the image")
    sent_image = client.sent[-1][1].imageMessage
    assert world.media[sent_image.directPath] == png(3, 3)
    assert (sent_image.width, sent_image.mimetype) == (3, "image/png")


async def test_direct_chat_with_a_lid_user_and_a_failed_send_is_reported(
    whatsapp_bridge: BridgeUnderTest, fake_whatsapp: FakeWhatsApp, matrix_user: TestClient
) -> None:
    env, world = whatsapp_bridge, fake_whatsapp
    me = world.account("4915111120001", "Nina")
    eve = world.account("4915111120002", "Eve")
    _, client, login = await link_account(matrix_user, env, world, me)
    await client.wait_connected()
    # Only the LID is known for Eve: no phone number travels with the message.
    client.emit(message_event(source(eve.lid_jid, eve.lid_jid), text("hi there"), msg_id="3EB0D1", push_name="Eve"))
    portal = await matrix_user.wait_for_invite()
    await matrix_user.join(portal)
    first = await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "hi there")
    assert first.source["sender"] == f"@hubwhatsapp_whatsapp_lid.{eve.lid}:localhost"
    portal_row = await env.bridge.db.portals.by_room(portal)
    assert portal_row[0].key.chat_id == f"dm.{login.login_id}.lid.{eve.lid}"
    assert portal_row[0].is_direct

    await matrix_user.send_text(portal, "hello Eve")
    await until(lambda: client.sent and client.sent[-1][1].conversation == "hello Eve", what="the answer")
    assert (client.sent[-1][0].User, client.sent[-1][0].Server) == (eve.lid, "lid")

    client.fail_sends = "server returned error 479"
    failed = await matrix_user.send_text(portal, "this one fails")
    notice = await matrix_user.wait_for_event(
        portal, lambda e: "not delivered to WhatsApp" in body_of(e)
    )
    assert "479" in body_of(notice)
    assert content(notice)["m.relates_to"]["m.in_reply_to"]["event_id"] == failed
    client.fail_sends = None

    # Typing and read receipts go to WhatsApp.
    await matrix_user.nio.room_typing(portal, True, timeout=5000)
    await until(lambda: any(c[0] == "send_chat_presence" for c in client.calls), what="typing")
    await matrix_user.nio.room_read_markers(portal, first.event_id, first.event_id)
    await until(lambda: any(c[0] == "mark_read" for c in client.calls), what="the read receipt")
    call = next(c for c in client.calls if c[0] == "mark_read")
    assert call[1][0] == ("3EB0D1",) and call[1][2].User == eve.lid
