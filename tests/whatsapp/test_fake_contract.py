"""The fake stands in for neonize's real client: same methods, same signatures; and the
real compiled library loads here and creates the session store the bridge relies on."""

from __future__ import annotations

import inspect
import sqlite3
from pathlib import Path

import pytest
from neonize.aioze.client import ClientFactory, ContactStore, NewAClient

from tests.whatsapp.fake_neonize import FakeContactStore, FakeNeonizeClient

USED_METHODS = [
    "connect", "stop", "disconnect", "PairPhone", "get_me", "send_message", "upload",
    "download_any", "get_group_info", "get_joined_groups", "get_profile_picture", "mark_read",
    "send_chat_presence", "logout", "get_lid_from_pn", "get_pn_from_lid", "create_group",
    "set_group_name", "set_group_topic", "set_group_photo", "update_group_participants",
]  # fmt: skip


def _shape(function) -> list[tuple[str, object, bool]]:
    return [
        (p.name, p.kind, p.default is inspect.Parameter.empty)
        for p in inspect.signature(function).parameters.values()
    ]


@pytest.mark.parametrize("name", USED_METHODS)
def test_fake_client_method_matches_neonize(name: str) -> None:
    real = getattr(NewAClient, name)
    fake = getattr(FakeNeonizeClient, name)
    assert inspect.iscoroutinefunction(real) == inspect.iscoroutinefunction(fake)
    assert _shape(fake) == _shape(real)


@pytest.mark.parametrize("name", ["get_contact", "get_all_contacts"])
def test_fake_contact_store_matches_neonize(name: str) -> None:
    assert _shape(getattr(FakeContactStore, name)) == _shape(getattr(ContactStore, name))


def test_connector_uses_only_the_faked_methods() -> None:
    """Every client call in the connector is one of the methods checked above."""
    import re

    package = Path(__file__).parents[2] / "bridge" / "networks" / "whatsapp"
    source = "\n".join(p.read_text() for p in package.glob("*.py"))
    called = set(re.findall(r"client\.(\w+)\(", source)) | set(re.findall(r"client\.contact\.(\w+)\(", source))
    allowed = set(USED_METHODS) | {"get_contact", "get_all_contacts", "event", "qr"}
    assert called <= allowed, called - allowed


def test_real_library_loads_and_creates_the_session_store(tmp_path: Path) -> None:
    database = tmp_path / "session.db"
    assert ClientFactory.get_all_devices_from_db(str(database)) == []
    tables = {row[0] for row in sqlite3.connect(database).execute("select name from sqlite_master")}
    assert {"whatsmeow_device", "whatsmeow_sessions", "whatsmeow_lid_map", "whatsmeow_contacts"} <= tables
