"""Signal groups (name, description, avatar, members) and disappearing-message timers in Matrix."""

from __future__ import annotations

import base64
import uuid

import pytest

from tests.signal import envelopes as env_
from tests.signal.envelopes import Person
from tests.signal.flows import add_contact, body_of, ghost_of, join_portal, link_signal
from tests.signal.stub_daemon import StubDaemon, group_entry
from tests.support.bridge_env import BridgeUnderTest
from tests.support.matrix_client import TestClient

pytestmark = pytest.mark.synapse


async def test_group_portal_follows_signal_name_description_avatar_members_and_timer(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked = await link_signal(matrix_user, signal_bridge, signal_daemon)
    bob, carol, dave = Person("Bob"), Person("Carol"), Person("Dave")
    for person in (bob, carol, dave):
        add_contact(linked.account, person)
    group_id = base64.b64encode(uuid.uuid4().bytes * 2).decode()
    group = group_entry(group_id, "Garden", [linked.account, bob.aci, carol.aci], description="Roses")
    linked.account.groups[group_id] = group
    linked.account.avatars[f"group:{group_id}"] = b"\x89PNG first avatar"
    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), "hello garden", group=group_id))
    portal = await join_portal(linked)
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "hello garden")
    room = matrix_user.nio.rooms[portal]
    assert room.name == "Garden" and room.topic == "Roses"
    assert {ghost_of(signal_bridge, bob.aci), ghost_of(signal_bridge, carol.aci)} <= set(room.users)
    first_avatar = room.room_avatar_url
    assert first_avatar and await matrix_user.download(first_avatar) == b"\x89PNG first avatar"

    # Bob renames the group, changes its description and avatar, swaps Carol for Dave and sets a timer.
    group.update(name="Garden club", description="Roses and tulips", messageExpirationTime=3600)
    group["members"] = [m for m in group["members"] if m["uuid"] != carol.aci] + [{"number": None, "uuid": dave.aci}]
    linked.account.avatars[f"group:{group_id}"] = b"\x89PNG second avatar"
    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), None, group=group_id, update=True))
    await matrix_user.wait_for_event(portal, lambda e: e.source.get("type") == "m.room.name"
                                     and e.source["content"].get("name") == "Garden club")
    await matrix_user.wait_for_event(portal, lambda e: e.source.get("type") == "m.room.topic"
                                     and e.source["content"].get("topic") == "Roses and tulips")
    avatar = await matrix_user.wait_for_event(portal, lambda e: e.source.get("type") == "m.room.avatar"
                                              and e.source["content"].get("url") != first_avatar)
    assert await matrix_user.download(avatar.source["content"]["url"]) == b"\x89PNG second avatar"
    await matrix_user.wait_for_event(portal, lambda e: e.source.get("type") == "m.room.member"
                                     and e.source.get("state_key") == ghost_of(signal_bridge, carol.aci)
                                     and e.source["content"].get("membership") == "leave")
    await matrix_user.wait_for_event(portal, lambda e: e.source.get("type") == "m.room.member"
                                     and e.source.get("state_key") == ghost_of(signal_bridge, dave.aci)
                                     and e.source["content"].get("membership") == "join")
    notice = await matrix_user.wait_for_event(portal, lambda e: "Disappearing messages" in body_of(e))
    assert "1 hour" in body_of(notice) and notice.source["content"]["msgtype"] == "m.notice"

    # Matrix -> Signal: a message in the group goes to the group id.
    await matrix_user.send_text(portal, "tulips in April")
    sent = await signal_daemon.wait_for_request("send", lambda p: p.get("message") == "tulips in April")
    assert sent["groupId"] == group_id and "recipient" not in sent


async def test_disappearing_timer_is_shown_and_expired_messages_leave_matrix_both_ways(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked = await link_signal(matrix_user, signal_bridge, signal_daemon)
    bob = Person("Bob")
    add_contact(linked.account, bob)
    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), "before the timer"))
    portal = await join_portal(linked)
    kept = await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "before the timer")

    # Bob turns on a 2-second timer: a timer-only message (0.13.19 has no expiration flag).
    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), None, expires=2))
    notice = await matrix_user.wait_for_event(portal, lambda e: "Disappearing messages" in body_of(e))
    assert "2 seconds" in body_of(notice)
    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), "gone soon", expires=2))
    theirs = await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "gone soon")
    mine = await matrix_user.send_text(portal, "mine goes too")
    await signal_daemon.wait_for_request("send", lambda p: p.get("message") == "mine goes too")
    for target in (theirs.event_id, mine):
        await matrix_user.wait_for_event(portal, lambda e, t=target: e.source.get("redacts") == t
                                         or (e.source.get("content") or {}).get("redacts") == t, timeout=15)
    assert not any(e.source.get("redacts") == kept.event_id for e in matrix_user.events(portal))

    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), None, expires=0))
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "Disappearing messages are now off.")


async def test_matrix_room_name_topic_avatar_and_ghost_membership_changes_reach_the_signal_group(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked = await link_signal(matrix_user, signal_bridge, signal_daemon)
    bob, carol = Person("Bob"), Person("Carol")
    for person in (bob, carol):
        add_contact(linked.account, person)
    group_id = base64.b64encode(uuid.uuid4().bytes * 2).decode()
    linked.account.groups[group_id] = group_entry(group_id, "Choir", [linked.account, bob.aci])
    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), "la la", group=group_id))
    portal = await join_portal(linked)
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "la la")
    mine = linked.account.number

    def update(**expected):
        return signal_daemon.wait_for_request(
            "updateGroup", lambda p: p.get("account") == mine and all(p.get(k) == v for k, v in expected.items())
        )

    await matrix_user.nio.room_put_state(portal, "m.room.name", {"name": "Chamber choir"})
    await update(groupId=group_id, name="Chamber choir")
    await matrix_user.nio.room_put_state(portal, "m.room.topic", {"topic": "Tuesdays at 8"})
    await update(groupId=group_id, description="Tuesdays at 8")
    avatar = b"\x89PNG choir"
    mxc = await matrix_user.upload(avatar, "image/png", "choir.png")
    await matrix_user.nio.room_put_state(portal, "m.room.avatar", {"url": mxc, "info": {"mimetype": "image/png"}})
    sent = await signal_daemon.wait_for_request("updateGroup", lambda p: p.get("account") == mine and "avatar" in p)
    assert sent["avatar"] == "data:image/png;filename=avatar;base64," + base64.b64encode(avatar).decode()
    await matrix_user.nio.room_invite(portal, ghost_of(signal_bridge, carol.aci))
    await update(groupId=group_id, member=[carol.aci])
    await matrix_user.nio.room_kick(portal, ghost_of(signal_bridge, bob.aci))
    await update(groupId=group_id, removeMember=[bob.aci])
    assert [m["uuid"] for m in linked.account.groups[group_id]["members"]] == [linked.account.aci, carol.aci]
    # The bridge's own mirror of the rename is not sent back to Signal as a second change.
    assert sum(1 for m, p in signal_daemon.requests if m == "updateGroup" and p.get("name")) == 1
