"""A user can get everything the bridge stores about them, and have it erased."""

from __future__ import annotations

import json

import pytest

from bridge.networks.loopback.client import LoopbackClient
from tests.conftest import unique
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import body_of, sent_by, setup_portal, wait_for_new, wait_for_remote
from tests.support.matrix_client import TestClient

pytestmark = pytest.mark.synapse

TABLES = ("bridge_user", "login", "portal", "ghost", "message", "reaction",
          "relay_optout", "relay_notice", "pending_event", "kv_store")


async def rows_naming(bridge, *needles: str) -> list[tuple[str, dict]]:
    found = []
    for table in TABLES:
        for row in await bridge.db.db.fetch(f"SELECT * FROM {table}"):
            values = " ".join(str(v) for v in dict(row).values())
            if any(n in values for n in needles):
                found.append((table, dict(row)))
    return found


async def test_export_returns_the_users_data_and_forget_me_erases_it(
    running_bridge: BridgeUnderTest, loopback: LoopbackClient, matrix_user: TestClient
) -> None:
    portal = await setup_portal(matrix_user, running_bridge, loopback, unique)
    await matrix_user.send_text(portal.room_id, "something to map")
    await wait_for_remote(loopback, portal.chat_id, lambda m: m["text"] == "something to map")
    room, bot = portal.management_room, sent_by(running_bridge.bot_mxid)

    before = len(matrix_user.events(room))
    await matrix_user.send_text(room, "export")
    file_event = await wait_for_new(
        matrix_user, room, lambda e: bot(e) and e.source["content"].get("msgtype") == "m.file", before
    )
    exported = json.loads(await matrix_user.download(file_event.source["content"]["url"]))
    assert exported["user"]["mxid"] == matrix_user.user_id
    assert [l["login_id"] for l in exported["logins"]] == [portal.me.user_id]
    assert "token" not in json.dumps(exported["logins"]), "secrets are not part of the export"
    assert any(m["remote_id"] for m in exported["message_mappings"])

    bridge = running_bridge.bridge
    assert await rows_naming(bridge, matrix_user.user_id)
    before = len(matrix_user.events(room))
    await matrix_user.send_text(room, "forget-me")
    await wait_for_new(matrix_user, room, lambda e: bot(e) and "forget-me confirm" in body_of(e), before)
    await matrix_user.send_text(room, "forget-me confirm")
    await wait_for_new(matrix_user, room, lambda e: bot(e) and "Goodbye" in body_of(e), before)
    leftovers = await rows_naming(bridge, matrix_user.user_id, portal.me.user_id)
    assert leftovers == [], leftovers
    assert bridge.ctx.logins.of_user(matrix_user.user_id) == []


async def test_message_mappings_expire_after_the_retention_period(
    running_bridge: BridgeUnderTest, loopback: LoopbackClient, matrix_user: TestClient
) -> None:
    from bridge.core.housekeeping import expire_once
    from bridge.db.messages import MessageRow

    bridge = running_bridge.bridge
    portal = await setup_portal(matrix_user, running_bridge, loopback, unique)
    key = (await bridge.db.portals.by_room(portal.room_id))[0].key
    old = MessageRow(key, unique("old"), 0, portal.room_id, f"${unique('e')}", "@x:localhost",
                     timestamp=1)
    await bridge.db.messages.put(old)
    days = bridge.config.bridge.message_retention_days
    fresh = await bridge.db.messages.by_remote(key, portal.first_message_id)
    assert fresh and fresh[0].timestamp > 1 and days > 0
    assert await expire_once(bridge.ctx) >= 1
    assert await bridge.db.messages.by_remote(key, old.remote_id) == []
    assert await bridge.db.messages.by_remote(key, portal.first_message_id) == fresh
