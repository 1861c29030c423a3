"""Steps the Signal tests share: link an account through the bot, open its portals."""

from __future__ import annotations

from dataclasses import dataclass

from tests.signal.envelopes import Person
from tests.signal.stub_daemon import StubAccount, StubDaemon, contact_entry
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import body_of, bot_says, open_management_room
from tests.support.matrix_client import TestClient


@dataclass
class Linked:
    """A Matrix user whose Signal account is linked to the bridge."""

    matrix: TestClient
    account: StubAccount
    management_room: str

    @property
    def me(self) -> Person:
        return Person(self.account.name, aci=self.account.aci, number=self.account.number)


def add_contact(account: StubAccount, person: Person, **extra) -> None:
    given, _, family = person.name.partition(" ")
    account.contacts[person.aci] = contact_entry(person.number, person.aci, given, family, **extra)


async def link_signal(client: TestClient, env: BridgeUnderTest, daemon: StubDaemon, name: str = "Alice") -> Linked:
    """Log ``client`` in to Signal by linking a new stub account through the bot's QR code."""
    env.allow(client.user_id, "user")
    room = await open_management_room(client, env)
    account = daemon.add_account(name)
    await client.send_text(room, "login signal")
    await bot_says(client, room, env, "Scan this QR code")
    await daemon.scan(account)
    await bot_says(client, room, env, "Logged in to Signal")
    await daemon.wait_for(lambda: daemon.subscribed(account))
    return Linked(client, account, room)


async def join_portal(linked: Linked) -> str:
    """Accept the next portal invite and return the room id."""
    room = await linked.matrix.wait_for_invite()
    await linked.matrix.join(room)
    return room


def ghost_of(env: BridgeUnderTest, aci: str) -> str:
    return f"@{env.ghost_prefix}signal_{aci}:localhost"


__all__ = ["Linked", "add_contact", "body_of", "ghost_of", "join_portal", "link_signal"]
