"""Tokens, session data and appservice secrets never reach the logs, at any level."""

from __future__ import annotations


import pytest
import yaml

from bridge.networks.loopback.client import LoopbackClient
from tests.conftest import unique
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import body_of, log_in_to_loopback, loopback_user, wait_for_remote
from tests.support.matrix_client import TestClient

pytestmark = pytest.mark.synapse


async def test_login_and_message_flow_log_no_token_or_secret(
    running_bridge: BridgeUnderTest,
    loopback: LoopbackClient,
    matrix_user: TestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(1)  # everything, TRACE included
    me = await loopback_user(loopback, unique("me"), "Me")
    bob = await loopback_user(loopback, unique("bob"), "Bob")
    await log_in_to_loopback(matrix_user, running_bridge, me)
    chat = (await loopback.admin_create_chat("Secrets", [me.user_id, bob.user_id]))["id"]
    await bob.api.send_message(chat, "psst")
    room = await matrix_user.wait_for_invite()
    await matrix_user.join(room)
    await matrix_user.wait_for_event(room, lambda e: body_of(e) == "psst")
    await matrix_user.send_text(room, "reply")
    await wait_for_remote(loopback, chat, lambda m: m["text"] == "reply")

    registration = yaml.safe_load(running_bridge.registration_path.read_text())
    secrets = {
        "loopback token": me.token,
        "as_token": registration["as_token"],
        "hs_token": registration["hs_token"],
    }
    # nio and peewee belong to the test's own Matrix client, which of course sees what
    # its user typed; everything else ran inside the bridge.
    client_side = ("nio", "peewee")
    logged = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if not r.name.startswith(client_side)
    )
    assert logged, "the flow should have produced log lines"
    for name, secret in secrets.items():
        assert secret not in logged, f"the {name} appeared in the logs"
