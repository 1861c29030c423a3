"""The loopback connector turns any event the network sends, however malformed, into a
core event or nothing: it never raises and never passes on a broken event."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.connector import LoginRecord
from bridge.core.events import RemoteEvent, RemoteMessage, UserInfo
from bridge.core.ids import LoginID, NetworkID, UserID
from bridge.networks.loopback.connector import LoopbackConfig, LoopbackConnector, LoopbackLogin

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
TYPES = st.sampled_from([
    "message", "edit", "delete", "reaction", "reaction_removed", "typing", "read",
    "chat_update", "chat_created", "member_join", "member_leave", "user_update", "bogus",
])
FIELDS = ["chat_id", "message", "message_id", "sender", "text", "entities", "emoji", "typing",
          "chat", "user", "user_id", "ts", "seq"]


def make_login() -> LoopbackLogin:
    connector = LoopbackConnector(LoopbackConfig(), host=None, network=NetworkID("loopback"))
    record = LoginRecord(NetworkID("loopback"), LoginID("me"), UserID("@me:x"), metadata={"token": "t"})
    return LoopbackLogin(connector, record)


@st.composite
def raw_events(draw) -> dict[str, Any]:
    event: dict[str, Any] = {"type": draw(TYPES)}
    for name in draw(st.lists(st.sampled_from(FIELDS), unique=True)):
        event[name] = draw(JSON)
    if draw(st.booleans()):
        # Mostly-right shapes reach deeper code paths.
        event.setdefault("chat_id", "c1")
        event["message"] = draw(st.fixed_dictionaries(
            {"id": st.text(min_size=1, max_size=5), "sender": st.text(max_size=5)},
            optional={"text": JSON, "entities": JSON, "media": JSON, "reply_to": JSON, "ts": JSON},
        ))
    return event


@settings(max_examples=400, deadline=None)
@given(raw_events())
def test_malformed_network_events_are_skipped_never_raised(raw: dict[str, Any]) -> None:
    converted = make_login()._convert(raw)
    assert converted is None or isinstance(converted, (RemoteEvent, UserInfo))
    if isinstance(converted, RemoteEvent):
        # Ids are strings the core can key, store and compare.
        assert isinstance(converted.chat_id, str) and converted.chat_id
        for name in ("message_id", "up_to", "user_id", "emoji", "reply_to"):
            value = getattr(converted, name, None)
            assert value is None or (isinstance(value, str) and value), name
        if converted.sender is not None:
            assert isinstance(converted.sender.user_id, str)
    if isinstance(converted, RemoteMessage):
        text = converted.content.text
        for entity in text.entities:
            assert 0 <= entity.offset and entity.offset + entity.length <= len(text.text)


def test_a_well_formed_message_is_converted() -> None:
    raw = {"type": "message", "chat_id": "c1", "ts": 5, "message": {
        "id": "m1", "sender": "bob", "text": "hi there",
        "entities": [{"type": "bold", "offset": 0, "length": 2}], "reply_to": None}}
    event = make_login()._convert(raw)
    assert isinstance(event, RemoteMessage)
    assert event.message_id == "m1" and event.content.text.text == "hi there"
    assert [e.type.value for e in event.content.text.entities] == ["bold"]
