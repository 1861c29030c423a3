"""The loopback network behaves like a real chat service, seen through LoopbackClient."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.networks.loopback.client import LoopbackClient, LoopbackError, media_payload
from bridge.networks.loopback.service import create_app
from bridge.networks.loopback.state import ServiceState

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


@dataclass
class Network:
    """A running service, its state (for white-box checks) and an admin client."""

    url: str
    state: ServiceState
    admin: LoopbackClient

    async def user(self, user_id: str) -> LoopbackClient:
        """Create a user and return a client acting as them."""
        made = await self.admin.admin_create_user(user_id, user_id.title())
        return self.admin.as_user(made["token"])

    async def group(self, chat_id: str, *members: str) -> str:
        made = await self.admin.admin_create_chat(chat_id.title(), list(members), chat_id=chat_id)
        return made["id"]


@pytest.fixture
async def net() -> AsyncIterator[Network]:
    state = ServiceState()
    server = TestServer(create_app(state), host="127.0.0.1")
    await server.start_server()
    url = f"http://127.0.0.1:{server.port}"
    admin = LoopbackClient(url)
    try:
        yield Network(url, state, admin)
    finally:
        await admin.close()
        await server.close()


async def error_of(awaitable: Any) -> LoopbackError:
    with pytest.raises(LoopbackError) as info:
        await awaitable
    return info.value


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


# --- users and chats -----------------------------------------------------------------


async def test_created_user_gets_a_token_and_reads_own_profile(net: Network) -> None:
    made = await net.admin.admin_create_user("alice", "Alice", phone="+15550001", avatar=PNG)
    alice = net.admin.as_user(made["token"])
    me = await alice.me()
    assert me["id"] == "alice" and me["display_name"] == "Alice" and me["phone"] == "+15550001"
    assert await alice.get_media(me["avatar_media_id"]) == (PNG, "image/png")
    assert (await net.admin.admin_get_user("alice"))["token"] == made["token"]


async def test_user_ids_are_unique_and_validated(net: Network) -> None:
    await net.user("alice")
    err = await error_of(net.admin.admin_create_user("alice", "Again"))
    assert (err.status, err.errcode) == (409, "LB_EXISTS")
    err = await error_of(net.admin.admin_create_user("no spaces", "X"))
    assert err.status == 400 and "[A-Za-z0-9_.-]" in err.message
    err = await error_of(net.admin.admin_create_user("carol", "C", avatar=b"GIF89a"))
    assert err.status == 400 and "PNG or JPEG" in err.message


async def test_chats_are_listed_only_for_their_members(net: Network) -> None:
    alice, _bob, carol = await net.user("alice"), await net.user("bob"), await net.user("carol")
    await net.group("party", "alice", "bob")
    assert [c["id"] for c in await alice.list_chats()] == ["party"]
    chat = await alice.get_chat("party")
    assert chat == {"id": "party", "title": "Party", "topic": None, "kind": "group",
                    "members": ["alice", "bob"], "avatar_media_id": None}
    assert await carol.list_chats() == []
    assert (await error_of(carol.get_chat("party"))).status == 403


async def test_user_created_chat_includes_the_creator_and_an_invite_link(net: Network) -> None:
    alice, _ = await net.user("alice"), await net.user("bob")
    made = await alice.create_chat("Plans", ["bob"])
    assert made["invite_link"] == f"loopback://join/{made['id']}"
    assert (await alice.get_chat(made["id"]))["members"] == ["alice", "bob"]
    err = await error_of(alice.create_chat("Trio", ["bob", "ghost"]))
    assert err.status == 400 and "ghost" in err.message


async def test_public_profile_needs_a_shared_chat(net: Network) -> None:
    alice, _, _ = await net.user("alice"), await net.user("bob"), await net.user("carol")
    await net.group("party", "alice", "bob")
    assert (await alice.get_user("bob"))["display_name"] == "Bob"
    assert "token" not in await alice.get_user("bob")
    assert (await error_of(alice.get_user("carol"))).status == 403
    assert (await error_of(alice.get_user("nobody"))).status == 404


# --- messages ------------------------------------------------------------------------


async def test_post_edit_delete_and_react_read_back_in_history(net: Network) -> None:
    alice, bob = await net.user("alice"), await net.user("bob")
    await net.group("party", "alice", "bob")
    entities = [{"type": "bold", "offset": 0, "length": 5}]
    first = (await alice.send_message("party", "hello world", entities=entities))["id"]
    reply = (await bob.send_message("party", "hi", reply_to=first))["id"]
    gone = (await bob.send_message("party", "oops"))["id"]
    await alice.edit_message("party", first, "hello there")
    await bob.add_reaction("party", first, "👍🏽")
    await alice.add_reaction("party", first, "👍🏽")
    await alice.add_reaction("party", first, "a/b%")  # path-hostile characters survive
    await alice.remove_reaction("party", first, "a/b%")
    await bob.delete_message("party", gone)

    msgs = await alice.get_messages("party")
    assert [m["id"] for m in msgs] == [first, reply, gone]
    assert msgs[0]["text"] == "hello there" and msgs[0]["edited"] and msgs[0]["entities"] == []
    assert msgs[0]["reactions"] == {"👍🏽": ["bob", "alice"]}
    assert msgs[1]["reply_to"] == first and msgs[1]["sender"] == "bob"
    assert msgs[2]["deleted"] and msgs[2]["text"] == ""
    assert msgs == await net.admin.admin_get_messages("party")


async def test_history_pages_with_limit_and_before(net: Network) -> None:
    alice = await net.user("alice")
    await net.group("solo", "alice")
    ids = [(await alice.send_message("solo", f"n{i}"))["id"] for i in range(5)]
    assert [m["id"] for m in await alice.get_messages("solo", limit=2)] == ids[3:]
    assert [m["id"] for m in await alice.get_messages("solo", limit=2, before=ids[3])] == ids[1:3]
    err = await error_of(alice.get_messages("solo", before="m999"))
    assert err.status == 400


async def test_media_message_stores_bytes_behind_a_media_id(net: Network) -> None:
    alice, bob = await net.user("alice"), await net.user("bob")
    await net.group("party", "alice", "bob")
    payload = media_payload("file", "notes.txt", "text/plain; charset=utf-8", b"\x00\x01data")
    await alice.send_message("party", None, media=payload)
    media = (await bob.get_messages("party"))[0]["media"]
    assert {k: media[k] for k in ("kind", "name", "size")} == {"kind": "file", "name": "notes.txt", "size": 6}
    assert await bob.get_media(media["media_id"]) == (b"\x00\x01data", "text/plain; charset=utf-8")
    assert (await net.admin.admin_get_media(media["media_id"]))[0] == b"\x00\x01data"
    assert (await error_of(net.admin.as_user("bad").get_media(media["media_id"]))).status == 401


async def test_same_txn_id_posts_once_and_returns_the_same_id(net: Network) -> None:
    alice, bob = await net.user("alice"), await net.user("bob")
    await net.group("party", "alice", "bob")
    first = await alice.send_message("party", "once", txn_id="t1")
    again = await alice.send_message("party", "once", txn_id="t1")
    other = await bob.send_message("party", "mine", txn_id="t1")  # txn ids are per sender
    assert again == first and other != first
    assert [m["text"] for m in await alice.get_messages("party")] == ["once", "mine"]
    messages = [e for e in await alice.get_events(timeout=0) if e["type"] == "message"]
    assert [e["message"]["txn_id"] for e in messages] == ["t1", "t1"]


async def test_retried_txn_post_answers_200_instead_of_201(net: Network) -> None:
    await net.user("alice")
    await net.group("solo", "alice")
    token = (await net.admin.admin_get_user("alice"))["token"]
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        url = f"{net.url}/chats/solo/messages"
        statuses = [(await http.post(url, json={"text": "x", "txn_id": "k"}, headers=headers)).status
                    for _ in range(2)]
    assert statuses == [201, 200]


# --- auth and errors -----------------------------------------------------------------


async def test_bad_or_missing_token_is_401(net: Network) -> None:
    await net.user("alice")
    for client in (net.admin.as_user("nope"), net.admin):  # the admin client has no token
        err = await error_of(client.me())
        assert (err.status, err.errcode) == (401, "LB_UNAUTHORIZED")


async def test_posting_to_a_chat_you_are_not_in_is_403(net: Network) -> None:
    _, carol = await net.user("alice"), await net.user("carol")
    await net.group("party", "alice")
    err = await error_of(carol.send_message("party", "let me in"))
    assert (err.status, err.errcode) == (403, "LB_FORBIDDEN")


async def test_only_the_sender_may_edit_or_delete(net: Network) -> None:
    alice, bob = await net.user("alice"), await net.user("bob")
    await net.group("party", "alice", "bob")
    mid = (await alice.send_message("party", "mine"))["id"]
    assert (await error_of(bob.edit_message("party", mid, "yours"))).status == 403
    assert (await error_of(bob.delete_message("party", mid))).status == 403


async def test_unknown_things_are_404(net: Network) -> None:
    alice = await net.user("alice")
    await net.group("party", "alice")
    for call in (alice.get_chat("nope"), alice.send_message("nope", "x"),
                 alice.edit_message("party", "m404", "x"), alice.add_reaction("party", "m404", "x"),
                 alice.get_media("md404"), net.admin.admin_get_user("nope"),
                 net.admin.admin_get_messages("nope")):
        err = await error_of(call)
        assert (err.status, err.errcode) == (404, "LB_NOT_FOUND"), err
    async with aiohttp.ClientSession() as http, http.get(f"{net.url}/no/such/route") as resp:
        assert resp.status == 404 and (await resp.json())["errcode"] == "LB_NOT_FOUND"


async def test_malformed_json_is_400_with_a_clear_message(net: Network) -> None:
    async with aiohttp.ClientSession() as http:
        for raw, expected in ((b"{not json", "not valid JSON"), (b"", "empty"), (b"[1]", "JSON object")):
            async with http.post(f"{net.url}/admin/users", data=raw) as resp:
                body = await resp.json()
            assert resp.status == 400 and body["errcode"] == "LB_BAD_REQUEST"
            assert expected in body["error"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "field 'text' is required"),
        ({"text": 5}, "field 'text' must be a string"),
        ({"text": "hi", "entities": "bold"}, "must be a list"),
        ({"text": "hi", "entities": [{"type": "bold", "offset": 1, "length": 5}]}, "only 2 characters"),
        ({"text": "hi", "entities": [{"type": "bold", "offset": "0", "length": 1}]}, "offset must be an integer"),
        ({"text": "hi", "reply_to": "m999"}, "reply_to"),
        ({"media": {"kind": "gif", "name": "a", "mime": "image/gif", "data": ""}}, "media.kind"),
        ({"media": {"kind": "image", "name": "a", "mime": "image/png", "data": "!!"}}, "base64"),
    ],
)
async def test_bad_message_bodies_are_400_naming_the_problem(
    net: Network, body: dict[str, Any], expected: str
) -> None:
    alice = await net.user("alice")
    await net.group("party", "alice")
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {alice.token}"}
        async with http.post(f"{net.url}/chats/party/messages", json=body, headers=headers) as resp:
            answer = await resp.json()
    assert resp.status == 400 and answer["errcode"] == "LB_BAD_REQUEST"
    assert expected in answer["error"]
    assert await alice.get_messages("party") == []


async def test_missing_required_fields_are_400(net: Network) -> None:
    await net.user("alice")
    err = await error_of(net.admin._request("POST", "/admin/users", body={"id": "bob"}))
    assert err.status == 400 and "display_name" in err.message
    err = await error_of(net.admin._request("POST", "/admin/chats", body={"title": "x"}))
    assert err.status == 400 and "members" in err.message


# --- events --------------------------------------------------------------------------


async def test_events_reach_every_member_including_the_sender(net: Network) -> None:
    alice, bob = await net.user("alice"), await net.user("bob")
    await net.group("party", "alice", "bob")
    mid = (await alice.send_message("party", "hi", txn_id="a1"))["id"]
    await bob.add_reaction("party", mid, "🎉")
    await alice.edit_message("party", mid, "hi!")
    await bob.set_typing("party", True)
    await bob.mark_read("party", mid)
    await bob.remove_reaction("party", mid, "🎉")
    await alice.delete_message("party", mid)
    expected = ["chat_created", "message", "reaction", "edit", "typing", "read", "reaction_removed", "delete"]
    for client in (alice, bob):
        events = await client.get_events(timeout=0)
        assert types(events) == expected
        assert [e["seq"] for e in events] == list(range(1, len(expected) + 1))
        assert events[1]["message"]["txn_id"] == "a1" and events[1]["chat_id"] == "party"
        assert events[2] | {"seq": 0, "ts": 0} == {"seq": 0, "ts": 0, "type": "reaction", "chat_id": "party",
                                                     "message_id": mid, "sender": "bob", "emoji": "🎉"}
        assert events[3]["text"] == "hi!" and events[4]["typing"] is True


async def test_unacked_events_are_redelivered_with_the_same_seq_after_reconnect(net: Network) -> None:
    alice = await net.user("alice")
    await net.group("solo", "alice")
    await alice.send_message("solo", "one")
    first = await alice.get_events(timeout=0)
    async with LoopbackClient(net.url, alice.token) as reconnected:  # a new HTTP session
        assert await reconnected.get_events(timeout=0) == first


async def test_acked_events_are_not_redelivered(net: Network) -> None:
    alice = await net.user("alice")
    await net.group("solo", "alice")
    for text in ("one", "two"):
        await alice.send_message("solo", text)
    events = await alice.get_events(timeout=0)
    assert (await alice.ack_events(events[1]["seq"]))["acked"] == 2
    assert [e["message"]["text"] for e in await alice.get_events(timeout=0)] == ["two"]
    await alice.ack_events(events[-1]["seq"])
    assert await alice.get_events(timeout=0) == []


async def test_acking_past_the_last_seq_cannot_swallow_later_events(net: Network) -> None:
    alice = await net.user("alice")
    await net.group("solo", "alice")
    assert (await alice.ack_events(1000))["acked"] == 1
    await alice.send_message("solo", "later")
    assert [e["seq"] for e in await alice.get_events(timeout=0)] == [2]


async def test_long_poll_returns_as_soon_as_an_event_arrives(net: Network) -> None:
    alice, bob = await net.user("alice"), await net.user("bob")
    await net.group("party", "alice", "bob")
    await bob.ack_events(1)
    poll = asyncio.create_task(bob.get_events(timeout=10))
    await asyncio.sleep(0.05)
    assert not poll.done()
    await alice.send_message("party", "wake up")
    events = await asyncio.wait_for(poll, 2)
    assert types(events) == ["message"]


async def test_long_poll_returns_nothing_after_its_timeout(net: Network) -> None:
    alice = await net.user("alice")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await alice.get_events(timeout=0.2) == []
    assert 0.15 < loop.time() - started < 2


async def test_membership_changes_emit_join_and_leave(net: Network) -> None:
    alice, bob = await net.user("alice"), await net.user("bob")
    await net.group("party", "alice")
    await alice.add_member("party", "bob")
    await bob.remove_member("party", "bob")  # leave
    await alice.send_message("party", "bob is gone")
    assert types(await alice.get_events(timeout=0)) == ["chat_created", "member_join", "member_leave", "message"]
    bob_events = await bob.get_events(timeout=0)
    assert types(bob_events) == ["member_join", "member_leave"]
    assert bob_events[0]["chat"]["members"] == ["alice", "bob"] and bob_events[1]["user_id"] == "bob"
    assert (await error_of(bob.send_message("party", "back?"))).status == 403


async def test_profile_and_chat_updates_reach_everyone_concerned(net: Network) -> None:
    alice, bob, carol = await net.user("alice"), await net.user("bob"), await net.user("carol")
    await net.group("party", "alice", "bob")
    for client in (alice, bob, carol):
        await client.ack_events(100)
    await net.admin.admin_update_user("alice", display_name="Alice A.", avatar=PNG)
    await bob.update_chat("party", title="Big party", topic="bring snacks")
    alice_events = await alice.get_events(timeout=0)
    assert types(alice_events) == ["user_update", "chat_update"]
    assert alice_events[0]["chat_id"] is None and alice_events[0]["user"]["display_name"] == "Alice A."
    assert alice_events[0]["user"]["avatar_media_id"] is not None
    assert alice_events[1]["chat"]["title"] == "Big party"
    assert types(await bob.get_events(timeout=0)) == ["user_update", "chat_update"]
    assert await carol.get_events(timeout=0) == []


# --- fault injection -----------------------------------------------------------------


async def test_rate_limit_fault_answers_429_with_retry_after_then_recovers(net: Network) -> None:
    alice = await net.user("alice")
    await net.group("solo", "alice")
    await net.admin.set_faults(rate_limit={"count": 2, "retry_after": 1.5})
    for _ in range(2):
        err = await error_of(alice.send_message("solo", "hi"))
        assert (err.status, err.errcode, err.retry_after) == (429, "LB_RATE_LIMITED", 1.5)
    await alice.send_message("solo", "hi")
    assert len(await alice.get_messages("solo")) == 1


async def test_fail_sends_fault_answers_500_with_the_given_text(net: Network) -> None:
    alice = await net.user("alice")
    await net.group("solo", "alice")
    mid = (await alice.send_message("solo", "hi"))["id"]
    await net.admin.set_faults(fail_sends={"count": 3, "error": "disk on fire"})
    for call in (alice.edit_message("solo", mid, "x"), alice.add_reaction("solo", mid, "x"),
                 alice.delete_message("solo", mid)):
        err = await error_of(call)
        assert (err.status, err.errcode, err.message) == (500, "LB_FAILED", "disk on fire")
    assert (await alice.get_messages("solo"))[0]["text"] == "hi"
    await alice.delete_message("solo", mid)


async def test_clearing_faults_restores_normal_service(net: Network) -> None:
    alice = await net.user("alice")
    await net.group("solo", "alice")
    await net.admin.set_faults(rate_limit={"count": 5, "retry_after": 1}, fail_sends={"count": 5, "error": "x"})
    assert (await net.admin.get_faults())["rate_limit"]["count"] == 5
    err = await error_of(net.admin.set_faults(rate_limit=None, fail_sends={"count": "x"}))
    assert err.status == 400 and "fail_sends.count" in err.message
    assert (await net.admin.get_faults())["rate_limit"]["count"] == 5  # a bad body changes nothing
    await net.admin.clear_faults()
    await alice.send_message("solo", "fine")


async def test_dropped_event_stream_answers_503_and_loses_nothing(net: Network) -> None:
    alice = await net.user("alice")
    await net.group("solo", "alice")
    await alice.ack_events(1)
    poll = asyncio.create_task(alice.get_events(timeout=10))
    await asyncio.sleep(0.05)
    await net.admin.set_faults(drop_event_streams=True)
    err = await error_of(asyncio.wait_for(poll, 2))
    assert err.status == 503
    await alice.send_message("solo", "still here")
    assert types(await alice.get_events(timeout=0)) == ["message"]  # the drop fired once only


async def test_drop_armed_with_no_poll_waiting_hits_the_next_poll_once(net: Network) -> None:
    alice = await net.user("alice")
    await net.admin.set_faults(drop_event_streams=True)
    assert (await error_of(alice.get_events(timeout=0))).status == 503
    assert await alice.get_events(timeout=0) == []


# --- properties ----------------------------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("post"), st.sampled_from(["alice", "bob"])),
        st.tuples(st.just("poll"), st.just(0.0)),
        st.tuples(st.just("ack"), st.floats(0, 1)),
        st.tuples(st.just("reconnect"), st.just(0.0)),
    ),
    max_size=30,
)


async def _check_delivery(ops: list[tuple[str, Any]]) -> None:
    server = TestServer(create_app(), host="127.0.0.1")
    await server.start_server()
    url = f"http://127.0.0.1:{server.port}"
    admin = LoopbackClient(url)
    closers: list[LoopbackClient] = []
    try:
        tokens = {u: (await admin.admin_create_user(u, u))["token"] for u in ("alice", "bob")}
        await admin.admin_create_chat("Party", ["alice", "bob"], chat_id="party")
        watcher = LoopbackClient(url, tokens["alice"])
        closers.append(watcher)
        posted: list[str] = []
        seen: dict[int, dict[str, Any]] = {}  # seq -> event, to prove redelivery is identical
        acked, batch = 0, []

        async def poll() -> list[dict[str, Any]]:
            events = await watcher.get_events(timeout=0)
            assert [e["seq"] for e in events] == list(range(acked + 1, acked + 1 + len(events)))
            assert len(events) == min(100, 1 + len(posted) - acked)  # chat_created + posts
            for event in events:
                assert seen.setdefault(event["seq"], event) == event
            return events

        for op, arg in ops:
            if op == "post":
                sender = admin.as_user(tokens[arg])
                posted.append((await sender.send_message("party", f"#{len(posted)}"))["id"])
            elif op == "poll":
                batch = await poll()
            elif op == "ack" and batch:
                up_to = batch[int(arg * (len(batch) - 1))]["seq"]
                acked = max(acked, (await watcher.ack_events(up_to))["acked"])
                batch = [e for e in batch if e["seq"] > acked]
            elif op == "reconnect":
                await watcher.close()
                watcher = LoopbackClient(url, tokens["alice"])
                closers.append(watcher)
        while batch := await poll():
            acked = (await watcher.ack_events(batch[-1]["seq"]))["acked"]
        messages = [seen[s]["message"]["id"] for s in sorted(seen) if seen[s]["type"] == "message"]
        assert messages == posted  # every event at least once, in order
    finally:
        for client in (*closers, admin):
            await client.close()
        await server.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_any_posts_and_acks_deliver_every_event_in_order_and_none_after_ack(ops: list[tuple[str, Any]]) -> None:
    asyncio.run(_check_delivery(ops))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sets(st.sampled_from(["u0", "u1", "u2", "u3"]), min_size=1), min_size=1, max_size=4),
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=25),
)
def test_every_member_gets_each_message_of_their_chats_in_order(
    memberships: list[set[str]], posts: list[tuple[int, int]]
) -> None:
    state = ServiceState()
    users = ["u0", "u1", "u2", "u3"]
    for u in users:
        state.create_user({"id": u, "display_name": u})
    chats = [state.create_chat({"title": "t", "members": sorted(m)}).id for m in memberships]
    expected: dict[str, list[str]] = {u: [] for u in users}
    for chat_index, user_index in posts:
        chat = state.chats[chats[chat_index % len(chats)]]
        sender = users[user_index]
        if sender not in chat.members:
            continue
        msg, _ = state.post_message(sender, chat.id, {"text": "x"})
        for member in chat.members:
            expected[member].append(msg.id)
    for u in users:
        log = state.logs[u].unacked(limit=10_000)
        assert [e["message"]["id"] for e in log if e["type"] == "message"] == expected[u]
        assert [e["seq"] for e in log] == list(range(1, len(log) + 1))


# --- the real process and the CLI ----------------------------------------------------


async def _run(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_service_process_announces_its_port_and_the_cli_posts_as_a_user(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({
        "users": [{"id": "alice", "display_name": "Alice"}, {"id": "bob", "display_name": "Bob"}],
        "chats": [{"id": "party", "title": "Party", "members": ["alice", "bob"]}],
    }))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge.networks.loopback.service", "--port", "0", "--seed", str(seed),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode().strip()
        assert line.startswith("loopback network listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        cli = ("-m", "bridge.networks.loopback.cli", "--url", url)
        code, out = await _run(*cli, "post", "--as", "alice", "--chat", "party", "hello")
        assert code == 0 and out.startswith("posted "), out
        code, out = await _run(*cli, "messages", "--chat", "party")
        assert code == 0 and "alice: hello" in out, out
        code, out = await _run(*cli, "post", "--as", "nobody", "--chat", "party", "x")
        assert code == 1 and "LB_NOT_FOUND" in out
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
