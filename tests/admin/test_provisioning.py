"""The provisioning API against the real bridge, Synapse and loopback network."""

from __future__ import annotations

import asyncio

import pytest
from nio import RoomCreateResponse

from bridge.networks.loopback.client import LoopbackClient
from bridge.provisioning import openapi_document
from tests.admin.conftest import AdminBridge
from tests.conftest import unique
from tests.support.flows import body_of, bot_says, loopback_user, open_management_room, wait_for_remote
from tests.support.matrix_client import TestClient

pytestmark = pytest.mark.synapse


async def test_requests_without_the_right_secret_are_refused(admin_bridge: AdminBridge) -> None:
    user = "@someone:localhost"
    requests = [
        ("GET", "/networks", None),
        ("GET", "/logins", None),
        ("POST", "/login", {"network": "loopback"}),
        ("GET", "/login/abc", None),
        ("POST", "/login/abc", {"input": "x"}),
        ("DELETE", "/login/abc", None),
        ("DELETE", "/logins/loopback/x", None),
        ("GET", "/logins/loopback/x/chats", None),
        ("POST", "/portals", {"network": "loopback", "chat_id": "c", "room_id": "!r:localhost"}),
        ("GET", "/no-such-endpoint", None),
    ]
    for method, path, body in requests:
        status, data = await admin_bridge.call(method, path, user=user, body=body, headers={})
        assert (status, data["errcode"]) == (401, "M_MISSING_TOKEN"), (method, path)
        for wrong in ("Bearer wrong", f"Bearer {admin_bridge.shared_secret}x", f"Bearer {admin_bridge.shared_secret[:-1]}"):
            status, data = await admin_bridge.call(method, path, user=user, body=body, headers={"Authorization": wrong})
            assert (status, data["errcode"]) == (403, "M_UNKNOWN_TOKEN"), (method, path, wrong)
        status, data = await admin_bridge.call(
            method, path, user=user, body=body, headers={"Authorization": f"Basic {admin_bridge.shared_secret}"}
        )
        assert status == 401, (method, path)


async def test_the_openapi_document_is_served_without_the_secret(admin_bridge: AdminBridge) -> None:
    async with admin_bridge.http.get(admin_bridge.provisioning_url + "/openapi.json") as resp:
        assert resp.status == 200
        document = await resp.json()
    assert document == openapi_document()
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["sharedSecret"]["scheme"] == "bearer"


async def test_malformed_requests_get_clear_errors(admin_bridge: AdminBridge, matrix_user: TestClient) -> None:
    admin_bridge.env.allow(matrix_user.user_id, "user")
    me = matrix_user.user_id
    call = admin_bridge.call

    async def expect(status: int, errcode: str, *args, **kwargs) -> None:
        got_status, data = await call(*args, **kwargs)
        assert (got_status, data.get("errcode")) == (status, errcode), (args, kwargs, data)
        assert isinstance(data.get("error"), str) and data["error"]

    await expect(400, "M_NOT_JSON", "POST", "/login", user=me, raw=b"{not json")
    await expect(400, "M_NOT_JSON", "POST", "/login", user=me, raw=b"\xff\xfe")
    await expect(400, "M_BAD_JSON", "POST", "/login", user=me, raw=b"")
    await expect(400, "M_BAD_JSON", "POST", "/login", user=me, body=["loopback"])
    await expect(400, "M_BAD_JSON", "POST", "/login", user=me, body={"network": 7})
    await expect(400, "M_BAD_JSON", "POST", "/login", user=me, body={"network": ""})
    await expect(400, "M_BAD_JSON", "POST", "/login", user=me, body={})
    await expect(400, "M_BAD_JSON", "POST", "/login", user=me, body={"network": "loopback", "extra": 1})
    await expect(400, "M_BAD_JSON", "POST", "/portals", user=me, body={"network": "loopback", "chat_id": "c"})
    await expect(413, "M_TOO_LARGE", "POST", "/login", user=me, raw=b'{"network": "' + b"x" * 70_000 + b'"}')
    await expect(404, "HB_UNKNOWN_NETWORK", "POST", "/login", user=me, body={"network": "carrier-pigeon"})
    await expect(404, "HB_UNKNOWN_NETWORK", "POST", "/login", user=me, body={"network": "loopback", "flow": "sms"})
    await expect(400, "HB_BAD_ROOM_ID", "POST", "/portals", user=me,
                 body={"network": "loopback", "chat_id": "c", "room_id": "not-a-room"})
    await expect(404, "M_NOT_FOUND", "GET", "/login/no-such-process", user=me)
    await expect(404, "M_NOT_FOUND", "GET", "/logins/loopback/nobody/chats", user=me)
    await expect(404, "M_NOT_FOUND", "DELETE", "/logins/loopback/nobody", user=me)
    await expect(400, "M_INVALID_PARAM", "GET", "/login/x", user=me, query={"wait": "soon"})
    await expect(400, "M_INVALID_PARAM", "GET", "/login/x", user=me, query={"wait": "31"})
    # Who the request is for.
    await expect(400, "M_MISSING_PARAM", "GET", "/logins")
    await expect(400, "M_INVALID_PARAM", "GET", "/logins", user="alice")
    await expect(400, "M_INVALID_PARAM", "GET", "/logins", user="@alice:")
    await expect(403, "M_FORBIDDEN", "GET", "/logins", user="@stranger:elsewhere.example")
    await expect(403, "M_FORBIDDEN", "GET", "/logins", user=admin_bridge.env.bot_mxid)
    await expect(403, "M_FORBIDDEN", "GET", "/logins", user=f"@{admin_bridge.env.ghost_prefix}loopback_bob:localhost")
    # The router's own errors are JSON too.
    await expect(404, "M_NOT_FOUND", "GET", "/nothing-here", user=me)
    status, _ = await call("PUT", "/networks")
    assert status == 405


async def test_one_login_process_per_user_and_only_its_owner_sees_it(
    admin_bridge: AdminBridge, matrix_user: TestClient, loopback: LoopbackClient
) -> None:
    env = admin_bridge.env
    env.allow(matrix_user.user_id, "user")
    other = "@other-" + unique("u") + ":localhost"
    env.allow(other, "user")
    status, first = await admin_bridge.call("POST", "/login", user=matrix_user.user_id, body={"network": "loopback"})
    assert status == 200 and first["status"] == "input" and first["secret"] is True
    status, _ = await admin_bridge.call("GET", f"/login/{first['process_id']}", user=other)
    assert status == 404

    # Starting again (or with the bot) replaces the first process.
    _, second = await admin_bridge.call("POST", "/login", user=matrix_user.user_id, body={"network": "loopback"})
    _, old = await admin_bridge.call("GET", f"/login/{first['process_id']}", user=matrix_user.user_id)
    assert old["status"] == "cancelled"
    status, data = await admin_bridge.call(
        "POST", f"/login/{first['process_id']}", user=matrix_user.user_id, body={"input": "x"}
    )
    assert (status, data["errcode"]) == (409, "HB_BAD_STATE")

    room = await open_management_room(matrix_user, env)
    await matrix_user.send_text(room, "login loopback")
    await bot_says(matrix_user, room, env, "Send the token")
    _, replaced = await admin_bridge.call("GET", f"/login/{second['process_id']}", user=matrix_user.user_id)
    assert replaced["status"] == "cancelled"
    await matrix_user.send_text(room, "cancel")
    await bot_says(matrix_user, room, env, "Login cancelled")

    _, third = await admin_bridge.call("POST", "/login", user=matrix_user.user_id, body={"network": "loopback"})
    status, cancelled = await admin_bridge.call("DELETE", f"/login/{third['process_id']}", user=matrix_user.user_id)
    assert status == 200 and cancelled["status"] == "cancelled"
    _, listing = await admin_bridge.call("GET", "/logins", user=matrix_user.user_id)
    assert listing == {"logins": [], "login_in_progress": None}


async def wait_for_login_state(admin_bridge: AdminBridge, user: str, login_id: str, state: str) -> dict:
    for _ in range(200):
        _, listing = await admin_bridge.call("GET", "/logins", user=user)
        for login in listing["logins"]:
            if login["login_id"] == login_id and login["state"] == state:
                return login
        await asyncio.sleep(0.1)
    raise AssertionError(f"{login_id} never became {state}: {listing}")


async def test_a_program_logs_in_lists_chats_links_one_to_a_room_and_logs_out(
    admin_bridge: AdminBridge, matrix_user: TestClient, loopback: LoopbackClient
) -> None:
    env = admin_bridge.env
    user = matrix_user.user_id
    env.allow(user, "user")
    me = await loopback_user(loopback, unique("me"), "Provisioned Me")
    bob = await loopback_user(loopback, unique("bob"), "Bob")

    status, networks = await admin_bridge.call("GET", "/networks")
    assert status == 200
    (loop,) = [n for n in networks["networks"] if n["id"] == "loopback"]
    assert loop["login_flows"][0]["id"] == "token"
    assert loop["capabilities"]["reactions"] is True

    _, step = await admin_bridge.call("POST", "/login", user=user, body={"network": "loopback"})
    assert step["status"] == "input" and "token" in step["message"]
    process = f"/login/{step['process_id']}"
    _, step = await admin_bridge.call("POST", process, user=user, body={"input": "not-a-token"})
    assert step["status"] == "input" and step["error"] == "That token is not valid."
    _, step = await admin_bridge.call("POST", process, user=user, body={"input": me.token})
    assert step["status"] == "complete"
    assert step["login"]["login_id"] == me.user_id and step["login"]["remote_name"] == "Provisioned Me"
    _, step = await admin_bridge.call("GET", process, user=user, query={"wait": "0.1"})
    assert step["status"] == "complete"

    chat = (await loopback.admin_create_chat("Book club", [me.user_id, bob.user_id]))["id"]
    await wait_for_login_state(admin_bridge, user, me.user_id, "connected")
    # The new chat got a portal room of its own at once; linking moves it.
    own_room = await matrix_user.wait_for_invite()
    await matrix_user.join(own_room)
    status, chats = await admin_bridge.call("GET", f"/logins/loopback/{me.user_id}/chats", user=user)
    assert status == 200
    (listed,) = [c for c in chats["chats"] if c["chat_id"] == chat]
    assert listed["name"] == "Book club" and listed["member_count"] == 2 and listed["is_direct"] is False

    # A room of the user's own, the bot invited as a moderator (so it may mark the room as
    # bridged with m.bridge), becomes the chat's room.
    created = await matrix_user.nio.room_create(
        name="Our hub", invite=[env.bot_mxid], power_level_override={"users": {env.bot_mxid: 50}}
    )
    assert isinstance(created, RoomCreateResponse), created
    room = created.room_id
    await matrix_user.join(room)
    link = {"network": "loopback", "chat_id": chat, "room_id": room}
    status, linked = await admin_bridge.call("POST", "/portals", user=user, body=link)
    assert status == 200, linked
    assert linked["created"] is True and linked["portal"]["room_id"] == room
    assert linked["moved_from"] == own_room
    await matrix_user.wait_for_event(own_room, lambda e: "now bridged into another room" in body_of(e))
    await matrix_user.wait_for_event(room, lambda e: "linked the Loopback chat 'Book club' to this room" in body_of(e))
    # The chat is told too, as the link command does.
    await wait_for_remote(loopback, chat, lambda m: "now bridged by the server localhost" in (m.get("text") or ""))
    state = await matrix_user.nio.room_get_state(room)
    assert any(e["type"] == "m.bridge" and e["state_key"] == f"loopback/{chat}" for e in state.events)

    await bob.api.send_message(chat, "hello hub")
    event = await matrix_user.wait_for_event(room, lambda e: body_of(e) == "hello hub")
    assert event.source["sender"].startswith(f"@{env.ghost_prefix}loopback_")
    await matrix_user.send_text(room, "hello book club")
    await wait_for_remote(loopback, chat, lambda m: m.get("text") == "hello book club" and m["sender"] == me.user_id)

    status, again = await admin_bridge.call("POST", "/portals", user=user, body=link)
    assert status == 200 and again["created"] is False
    _, chats = await admin_bridge.call("GET", f"/logins/loopback/{me.user_id}/chats", user=user)
    assert [c["room_id"] for c in chats["chats"] if c["chat_id"] == chat] == [room]

    status, out = await admin_bridge.call("DELETE", f"/logins/loopback/{me.user_id}", user=user)
    assert status == 200 and out == {"logged_out": {"network": "loopback", "login_id": me.user_id}}
    _, listing = await admin_bridge.call("GET", "/logins", user=user)
    assert listing["logins"] == []


async def test_linking_needs_a_login_that_sees_the_chat_and_power_in_the_room(
    admin_bridge: AdminBridge, matrix_user: TestClient, loopback: LoopbackClient, synapse, tmp_path
) -> None:
    from tests.support.matrix_client import make_client

    env = admin_bridge.env
    user = matrix_user.user_id
    env.allow(user, "user")
    me = await loopback_user(loopback, unique("me"), "Me")
    carol = await loopback_user(loopback, unique("carol"), "Carol")
    their_chat = (await loopback.admin_create_chat("Not mine", [carol.user_id]))["id"]
    my_chat = (await loopback.admin_create_chat("Mine", [me.user_id, carol.user_id]))["id"]

    room = await matrix_user.create_room(invite=[env.bot_mxid])
    body = {"network": "loopback", "chat_id": my_chat, "room_id": room}
    status, data = await admin_bridge.call("POST", "/portals", user=user, body=body)
    assert (status, data["errcode"]) == (404, "HB_NO_LOGIN")

    _, step = await admin_bridge.call("POST", "/login", user=user, body={"network": "loopback"})
    _, step = await admin_bridge.call("POST", f"/login/{step['process_id']}", user=user, body={"input": me.token})
    assert step["status"] == "complete"
    await wait_for_login_state(admin_bridge, user, me.user_id, "connected")

    status, data = await admin_bridge.call("POST", "/portals", user=user, body={**body, "chat_id": their_chat})
    assert (status, data["errcode"]) == (404, "HB_CHAT_NOT_VISIBLE")

    # A room the bot was never invited to.
    closed = await matrix_user.create_room()
    status, data = await admin_bridge.call("POST", "/portals", user=user, body={**body, "room_id": closed})
    assert (status, data["errcode"]) == (409, "HB_ROOM_NOT_JOINABLE")

    # Someone else's room, where the user has no power.
    owner = await make_client(synapse, unique("owner"), tmp_path / "owner", encryption=False)
    env.allow(owner.user_id, "relay")  # else the bot declines the owner's invite
    try:
        theirs = await owner.create_room(invite=[env.bot_mxid, user])
        await matrix_user.join(await matrix_user.wait_for_invite(lambda r: r.room_id == theirs))
        status, data = await admin_bridge.call("POST", "/portals", user=user, body={**body, "room_id": theirs})
        assert (status, data["errcode"]) == (403, "HB_NO_POWER")
    finally:
        await owner.close()

    status, data = await admin_bridge.call("POST", "/portals", user=user, body=body)
    assert status == 200 and data["created"] is True


async def test_a_long_poll_returns_when_the_login_changes(
    admin_bridge: AdminBridge, matrix_user: TestClient
) -> None:
    user = matrix_user.user_id
    admin_bridge.env.allow(user, "user")
    _, step = await admin_bridge.call("POST", "/login", user=user, body={"network": "loopback"})
    process = f"/login/{step['process_id']}"
    loop = asyncio.get_running_loop()

    started = loop.time()
    _, unchanged = await admin_bridge.call("GET", process, user=user, query={"wait": "0.5"})
    assert unchanged["status"] == "input" and loop.time() - started >= 0.45

    started = loop.time()
    poll = asyncio.create_task(admin_bridge.call("GET", process, user=user, query={"wait": "20"}))
    await asyncio.sleep(0.3)
    await admin_bridge.call("DELETE", process, user=user)
    _, changed = await poll
    assert changed["status"] == "cancelled"
    assert loop.time() - started < 5, "the poll should end when the login changes, not at its timeout"
