"""The real connector and the real Telethon client against a fake Telegram over MTProto."""

from __future__ import annotations

import pytest

from bridge.core.connector import LoginComplete, LoginError, LoginPrompt
from bridge.core.events import RemoteMessage
from bridge.core.ids import UserID
from tests.telegram.conftest import logged_in, phone_login


async def test_phone_login_with_wrong_code_and_two_step_password(connector, fake) -> None:
    alice = fake.add_account("Alice", phone="+4915100000001", password="correct horse")
    process = connector.start_login(UserID("@alice:localhost"), "phone")
    assert "phone number" in (await process.start()).message
    with pytest.raises(LoginError, match="phone number"):
        await process.submit("not a number")
    step = await process.submit("+49 151 00000001")
    assert isinstance(step, LoginPrompt) and step.secret
    with pytest.raises(LoginError, match="code is wrong"):
        await process.submit("00000" if fake.login_code(alice.phone) != "00000" else "11111")
    step = await process.submit(fake.login_code(alice.phone))
    assert isinstance(step, LoginPrompt) and step.secret and "password" in step.message
    with pytest.raises(LoginError, match="password is wrong"):
        await process.submit("wrong")
    done = await process.submit("correct horse")
    assert isinstance(done, LoginComplete)
    assert done.record.login_id == str(alice.id)
    assert done.record.remote_name == "Alice"
    assert "4915100000001" not in repr(done.record.metadata) + done.record.remote_name
    assert set(done.record.metadata) >= {"auth", "state", "peers"}


async def test_incoming_private_message_is_queued_with_sender_and_chat(connector, fake, host) -> None:
    alice = fake.add_account("Alice", phone="+4915100000002")
    bob = fake.add_account("Bob", last_name="B", phone="+4915100000003")
    login = await logged_in(connector, fake, alice)
    try:
        await fake.send(bob, alice, "hello alice")
        event = await host.wait_for(lambda: next(
            (e for e in host.events if isinstance(e, RemoteMessage) and e.content.text.text == "hello alice"), None))
        assert event.chat_id == f"dm:{alice.id}:{bob.id}"
        assert event.sender.user_id == str(bob.id) and not event.sender.is_from_me
    finally:
        await login.disconnect()
