"""Matrix room changes reach the WhatsApp group: name, topic, photo, members; refusals shown."""

from __future__ import annotations

import io

import pytest
from neonize.utils.enum import ParticipantChange
from PIL import Image

from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import body_of, sent_by
from tests.support.matrix_client import TestClient
from tests.whatsapp.fake_neonize import FakeWhatsApp
from tests.whatsapp.flows import link_account, message_event, source, text, until
from tests.whatsapp.test_whatsapp_messages import png

pytestmark = pytest.mark.synapse


def calls(client, name: str) -> list:
    return [args for called, args in client.calls if called == name]


async def test_matrix_room_name_topic_avatar_and_ghost_changes_reach_the_whatsapp_group_unless_refused(
    whatsapp_bridge: BridgeUnderTest, fake_whatsapp: FakeWhatsApp, matrix_user: TestClient
) -> None:
    env, world = whatsapp_bridge, fake_whatsapp
    me = world.account("4915111130001", "Mara")
    bob = world.account("4915111130002", "Bob")
    dave = world.account("4915111130003", "Dave")
    group = world.add_group("Choir", [me, bob], topic="Sundays")
    group.Participants[0].IsAdmin = True
    _, client, _login = await link_account(matrix_user, env, world, me)
    await client.wait_connected()
    client.emit(message_event(source(group.JID, bob.lid_jid), text("la la"), msg_id="3EB0E1", push_name="Bob"))
    portal = await matrix_user.wait_for_invite()
    await matrix_user.join(portal)
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "la la")
    client.emit(message_event(source(dave.lid_jid, dave.lid_jid), text("hi"), msg_id="3EB0E2", push_name="Dave"))
    dm = await matrix_user.wait_for_invite()  # Dave's ghost exists now
    await matrix_user.join(dm)
    await matrix_user.wait_for_event(dm, lambda e: body_of(e) == "hi")

    def ghost(account) -> str:
        return f"@hubwhatsapp_whatsapp_lid.{account.lid}:localhost"

    def members() -> list[str]:
        return [p.JID.User for p in group.Participants]

    await matrix_user.nio.room_put_state(portal, "m.room.name", {"name": "Chamber choir"})
    await until(lambda: group.GroupName.Name == "Chamber choir", what="the new name")
    await matrix_user.nio.room_put_state(portal, "m.room.topic", {"topic": "Tuesdays at 8"})
    await until(lambda: group.GroupTopic.Topic == "Tuesdays at 8", what="the new topic")
    mxc = await matrix_user.upload(png(4, 4), "image/png", "choir.png")
    await matrix_user.nio.room_put_state(portal, "m.room.avatar", {"url": mxc, "info": {"mimetype": "image/png"}})
    await until(lambda: calls(client, "set_group_photo"), what="the new photo")
    photo = calls(client, "set_group_photo")[0][1]
    with Image.open(io.BytesIO(photo)) as image:
        assert (image.format, image.size) == ("JPEG", (4, 4))  # WhatsApp takes JPEG only
    await matrix_user.nio.room_invite(portal, ghost(dave))
    await until(lambda: dave.lid in members(), what="Dave in the group")
    await matrix_user.nio.room_kick(portal, ghost(bob))
    await until(lambda: members() == [me.lid, dave.lid], what="Bob out of the group")
    changes = calls(client, "update_group_participants")
    assert [(jids[0].User, action) for _, jids, action in changes] == [
        (dave.lid, ParticipantChange.ADD), (bob.lid, ParticipantChange.REMOVE)]
    assert "4915" not in str(changes)  # people are addressed by LID, not phone number

    # Mara is no admin any more and the group's info is locked: her rename stays in Matrix.
    group.Participants[0].IsAdmin = False
    group.GroupLocked.isLocked = True
    await matrix_user.nio.room_put_state(portal, "m.room.name", {"name": "Mara's choir"})
    notice = await matrix_user.wait_for_event(
        portal, lambda e: sent_by(env.bot_mxid)(e) and "not delivered to WhatsApp" in body_of(e))
    assert "not an admin" in body_of(notice)
    assert group.GroupName.Name == "Chamber choir"
    # The bridge's own mirror of the rename is not sent back as a second change.
    assert len(calls(client, "set_group_name")) == 2
