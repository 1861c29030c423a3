"""Matrix room changes sent to Telegram supergroups: the channels.* requests, and refusals."""

from __future__ import annotations

import pytest
from telethon.tl import types as tl

from bridge.core.connector import ChatChange, OutgoingMedia, SendError
from bridge.core.events import MediaKind, RemoteMessage
from bridge.core.ids import RemoteChatID
from tests.telegram.conftest import logged_in


def message(host, text):
    return lambda: next((e for e in host.events if isinstance(e, RemoteMessage) and e.content.text.text == text), None)


async def test_supergroup_title_about_photo_invite_and_kick_use_channel_requests(connector, fake, host) -> None:
    alice = fake.add_account("Alice", phone="+4915200000041")
    bob = fake.add_account("Bob", phone="+4915200000042")
    carol = fake.add_account("Carol", phone="+4915200000043")
    club = fake.add_channel("Club", alice, [alice, bob])
    login = await logged_in(connector, fake, alice)
    try:
        await fake.send(carol, alice, "hello")  # Alice's account now knows Carol
        await fake.send(bob, club, "in the club")
        await host.wait_for(message(host, "hello"))
        await host.wait_for(message(host, "in the club"))
        chat = RemoteChatID(f"channel:{club.id}")
        fake.requests.clear()

        avatar = OutgoingMedia(MediaKind.IMAGE, "image/png", "avatar", b"\x89PNG club")
        await login.update_chat(chat, ChatChange(name="Book club", topic="Mondays", avatar=avatar))
        assert (club.title, club.about, fake.files[club.photo_id]) == ("Book club", "Mondays", b"\x89PNG club")
        await login.update_chat(chat, ChatChange(add_members=(str(carol.id),), remove_members=(str(bob.id),)))
        assert club.members == [alice.id, carol.id]
        assert bob.id not in club.banned  # kicked, not banned: Bob may come back
        assert [r for r in fake.requests if r != "SaveFilePartRequest"] == [
            "EditTitleRequest", "EditChatAboutRequest", "EditPhotoRequest",
            "InviteToChannelRequest", "EditBannedRequest", "EditBannedRequest",
        ]
    finally:
        await login.disconnect()


async def test_a_change_without_admin_rights_is_refused_permanently_with_the_reason(connector, fake, host) -> None:
    alice = fake.add_account("Alice", phone="+4915200000051")
    owner = fake.add_account("Olga", phone="+4915200000052")
    club = fake.add_channel("Club", owner, [owner, alice])
    group = fake.add_group("Family", [owner, alice])
    group.admins = {owner.id}
    login = await logged_in(connector, fake, alice)
    try:
        await fake.send(owner, club, "club news")
        await fake.send(owner, group, "family news")
        await host.wait_for(message(host, "club news"))
        await host.wait_for(message(host, "family news"))
        for chat in (f"channel:{club.id}", f"group:{alice.id}:{group.id}"):
            with pytest.raises(SendError) as refused:
                await login.update_chat(RemoteChatID(chat), ChatChange(name="Mine now"))
            assert refused.value.permanent and "not an admin" in refused.value.reason
        assert (club.title, group.title) == ("Club", "Family")
    finally:
        await login.disconnect()
