"""The appservice HTTP endpoint: authentication, bad bodies, retries and repeated transactions.

The server runs for real on 127.0.0.1 with a fake transaction handler and an in-memory
record of handled transactions, so each answer can be checked against what was handled.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.matrix.appservice import AppserviceServer, transaction_key
from tests.support.bridge_env import free_port

HS_TOKEN = "hs-token-for-tests"
GHOST = "@hub_loopback_alice:test.local"


class HandlerFailure(Exception):
    pass


@dataclass
class FakeBridge:
    """The handler, the transaction record and the user lookup the server calls."""

    handled: list[dict[str, Any]] = field(default_factory=list)
    handled_ids: list[str] = field(default_factory=list)
    marked: dict[str, int] = field(default_factory=dict)
    failing: bool = False
    users_asked: list[str] = field(default_factory=list)

    async def handle(self, txn_id: str, body: dict[str, Any]) -> None:
        if self.failing or "boom" in body:
            raise HandlerFailure("the handler failed")
        self.handled.append(body)
        self.handled_ids.append(txn_id)

    async def seen(self, txn_id: str) -> bool:
        return txn_id in self.marked

    async def mark(self, txn_id: str, now_ms: int) -> None:
        self.marked.setdefault(txn_id, now_ms)

    async def user_exists(self, user_id: str) -> bool:
        self.users_asked.append(user_id)
        return user_id == GHOST


@dataclass
class RunningServer:
    bridge: FakeBridge
    server: AppserviceServer
    session: aiohttp.ClientSession
    base: str

    async def put_txn(
        self, txn_id: str, body: Any = None, *, data: bytes | None = None, token: str | None = HS_TOKEN,
        query_token: str | None = None, prefix: str = "/_matrix/app/v1",
    ) -> tuple[int, Any, str]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        params = {"access_token": query_token} if query_token is not None else None
        payload = data if data is not None else json.dumps(body).encode()
        async with self.session.put(
            f"{self.base}{prefix}/transactions/{quote(txn_id, safe='')}",
            data=payload,
            headers=headers,
            params=params,
        ) as response:
            text = await response.text()
            return response.status, _json_or_none(text), response.content_type

    async def get(self, path: str, *, token: str | None = HS_TOKEN) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with self.session.get(f"{self.base}{path}", headers=headers) as response:
            return response.status, _json_or_none(await response.text())


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


async def start_server() -> RunningServer:
    bridge = FakeBridge()
    server = AppserviceServer(HS_TOKEN, bridge.handle, bridge, bridge.user_exists)
    port = free_port()
    await server.start("127.0.0.1", port)
    session = aiohttp.ClientSession()
    return RunningServer(bridge, server, session, f"http://127.0.0.1:{port}")


async def stop_server(running: RunningServer) -> None:
    await running.session.close()
    await running.server.stop()


@pytest.fixture
async def appservice() -> AsyncIterator[RunningServer]:
    running = await start_server()
    try:
        yield running
    finally:
        await stop_server(running)


EVENT = {"type": "m.room.message", "room_id": "!r:test.local", "event_id": "$e1", "content": {}}


def is_matrix_error(body: Any, errcode: str) -> bool:
    return isinstance(body, dict) and body.get("errcode") == errcode and isinstance(body.get("error"), str)


# --- authentication -------------------------------------------------------------------------


async def test_a_wrong_hs_token_is_forbidden(appservice: RunningServer) -> None:
    status, body, _ = await appservice.put_txn("t1", {"events": [EVENT]}, token="wrong")
    assert status == 403 and is_matrix_error(body, "M_FORBIDDEN")
    status, body, _ = await appservice.put_txn("t1", {"events": [EVENT]}, token=None, query_token="wrong")
    assert status == 403 and is_matrix_error(body, "M_FORBIDDEN")
    assert appservice.bridge.handled == [] and appservice.bridge.marked == {}


async def test_a_missing_hs_token_is_unauthorized(appservice: RunningServer) -> None:
    status, body, _ = await appservice.put_txn("t1", {"events": [EVENT]}, token=None)
    assert status == 401 and is_matrix_error(body, "M_UNAUTHORIZED")
    assert appservice.bridge.handled == []


async def test_the_hs_token_may_come_in_the_access_token_query(appservice: RunningServer) -> None:
    status, body, _ = await appservice.put_txn("t1", {"events": [EVENT]}, token=None, query_token=HS_TOKEN)
    assert (status, body) == (200, {})
    assert appservice.bridge.handled == [{"events": [EVENT]}]


async def test_a_wrong_token_learns_nothing_about_handled_transactions(appservice: RunningServer) -> None:
    assert (await appservice.put_txn("t1", {"events": []}))[0] == 200
    status, body, _ = await appservice.put_txn("t1", {"events": []}, token="wrong")
    assert status == 403 and is_matrix_error(body, "M_FORBIDDEN")


# --- bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"{not json", b"", b"\xff\xfe{}", b'{"events": [}'])
async def test_a_body_that_is_not_json_is_m_not_json(appservice: RunningServer, data: bytes) -> None:
    status, body, _ = await appservice.put_txn("t1", data=data)
    assert status == 400 and is_matrix_error(body, "M_NOT_JSON")
    assert appservice.bridge.handled == [] and appservice.bridge.marked == {}


@pytest.mark.parametrize(
    "payload",
    [[], [EVENT], "events", 42, None, {"events": {"0": EVENT}}, {"events": "x"}, {"ephemeral": {}},
     {"events": [], "de.sorunome.msc2409.ephemeral": 1}],
)
async def test_a_body_of_the_wrong_shape_is_m_bad_json(appservice: RunningServer, payload: Any) -> None:
    status, body, _ = await appservice.put_txn("t1", payload)
    assert status == 400 and is_matrix_error(body, "M_BAD_JSON")
    assert appservice.bridge.handled == [] and appservice.bridge.marked == {}


async def test_a_good_transaction_is_handled_and_marked(appservice: RunningServer) -> None:
    txn = {"events": [EVENT], "ephemeral": [{"type": "m.typing"}]}
    status, body, content_type = await appservice.put_txn("t1", txn)
    assert (status, body, content_type) == (200, {}, "application/json")
    assert appservice.bridge.handled == [txn]
    assert appservice.bridge.handled_ids == [transaction_key("t1", txn)]
    assert transaction_key("t1", txn) in appservice.bridge.marked


async def test_the_legacy_path_without_the_prefix_works(appservice: RunningServer) -> None:
    status, body, _ = await appservice.put_txn("t1", {"events": [EVENT]}, prefix="")
    assert (status, body) == (200, {})
    assert appservice.bridge.handled == [{"events": [EVENT]}]


# --- failures and repeats -------------------------------------------------------------------


async def test_a_handler_failure_is_a_500_and_the_transaction_is_retried(appservice: RunningServer) -> None:
    appservice.bridge.failing = True
    status, body, _ = await appservice.put_txn("t1", {"events": [EVENT]})
    assert status == 500 and is_matrix_error(body, "M_UNKNOWN")
    key = transaction_key("t1", {"events": [EVENT]})
    assert key not in appservice.bridge.marked  # so the homeserver's retry is processed

    appservice.bridge.failing = False
    status, body, _ = await appservice.put_txn("t1", {"events": [EVENT]})
    assert (status, body) == (200, {})
    assert appservice.bridge.handled == [{"events": [EVENT]}]
    assert key in appservice.bridge.marked


async def test_a_repeated_transaction_is_answered_without_handling_it_again(appservice: RunningServer) -> None:
    assert (await appservice.put_txn("t1", {"events": [EVENT]}))[:2] == (200, {})
    assert (await appservice.put_txn("t1", {"events": [EVENT]}))[:2] == (200, {})
    assert (await appservice.put_txn("t1", {"events": [EVENT]}, prefix=""))[:2] == (200, {})
    assert appservice.bridge.handled == [{"events": [EVENT]}]
    assert (await appservice.put_txn("t2", {"events": []}))[:2] == (200, {})
    assert len(appservice.bridge.handled) == 2


async def test_a_reused_transaction_id_with_new_events_is_handled(appservice: RunningServer) -> None:
    # Synapse numbers transactions anew from its last completed one after a restart, so
    # an id can come back with other events: those must not be dropped as a repeat.
    other = {**EVENT, "event_id": "$other"}
    assert (await appservice.put_txn("t1", {"events": [EVENT]}))[:2] == (200, {})
    assert (await appservice.put_txn("t1", {"events": [other]}))[:2] == (200, {})
    assert appservice.bridge.handled == [{"events": [EVENT]}, {"events": [other]}]


async def test_deeply_nested_json_gets_a_matrix_error(appservice: RunningServer) -> None:
    depth = 100_000
    data = b'{"events": [' + b"[" * depth + b"]" * depth + b"]}"
    status, body, content_type = await appservice.put_txn("t1", data=data)
    assert content_type == "application/json"
    assert status in (400, 500) and isinstance(body, dict) and "errcode" in body


async def test_an_unknown_charset_gets_a_matrix_error(appservice: RunningServer) -> None:
    async with appservice.session.put(
        f"{appservice.base}/_matrix/app/v1/transactions/t1",
        data=b"{}",
        headers={"Authorization": f"Bearer {HS_TOKEN}", "Content-Type": "application/json; charset=nope"},
    ) as response:
        assert response.content_type == "application/json"
        assert response.status == 400
    assert appservice.bridge.marked == {}


# --- other endpoints ------------------------------------------------------------------------


async def test_user_queries_are_answered_by_the_user_exists_callback(appservice: RunningServer) -> None:
    for prefix in ("/_matrix/app/v1", ""):
        status, body = await appservice.get(f"{prefix}/users/{quote(GHOST, safe='')}")
        assert (status, body) == (200, {})
        status, body = await appservice.get(f"{prefix}/users/{quote('@stranger:test.local', safe='')}")
        assert status == 404 and is_matrix_error(body, "M_NOT_FOUND")
    assert appservice.bridge.users_asked == [GHOST, "@stranger:test.local"] * 2

    status, body = await appservice.get(f"/_matrix/app/v1/users/{quote(GHOST, safe='')}", token=None)
    assert status == 401 and is_matrix_error(body, "M_UNAUTHORIZED")
    status, body = await appservice.get(f"/_matrix/app/v1/users/{quote(GHOST, safe='')}", token="bad")
    assert status == 403 and is_matrix_error(body, "M_FORBIDDEN")
    assert len(appservice.bridge.users_asked) == 4


async def test_room_alias_queries_ping_and_liveness(appservice: RunningServer) -> None:
    status, body = await appservice.get(f"/_matrix/app/v1/rooms/{quote('#a:test.local', safe='')}")
    assert status == 404 and is_matrix_error(body, "M_NOT_FOUND")
    async with appservice.session.post(
        f"{appservice.base}/_matrix/app/v1/ping", headers={"Authorization": f"Bearer {HS_TOKEN}"}, json={}
    ) as response:
        assert response.status == 200
    async with appservice.session.post(f"{appservice.base}/_matrix/app/v1/ping", json={}) as response:
        assert response.status == 401
    status, body = await appservice.get("/_matrix/mau/live", token=None)
    assert (status, body) == (200, {})


# --- any body -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
transaction_like = st.fixed_dictionaries(
    {},
    optional={
        "events": json_values,
        "ephemeral": json_values,
        "de.sorunome.msc2409.ephemeral": json_values,
        "boom": st.just(True),
    },
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    transaction_like.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
)


def test_any_body_gets_a_json_answer_and_never_crashes_the_server() -> None:
    """Runs in its own event loop: hypothesis drives the examples synchronously."""
    loop = asyncio.new_event_loop()
    running = loop.run_until_complete(start_server())
    txn_ids = (f"txn-{n}" for n in itertools.count())
    statuses: set[int] = set()
    try:

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(data=bodies)
        def check(data: bytes) -> None:
            txn_id = next(txn_ids)
            handled_before = len(running.bridge.handled)
            status, body, content_type = loop.run_until_complete(running.put_txn(txn_id, data=data))
            assert content_type == "application/json"
            assert status in (200, 400, 500)
            statuses.add(status)
            assert isinstance(body, dict)
            marked = [k for k in running.bridge.marked if k.startswith(f"{txn_id}:")]
            if status == 200:
                assert body == {} and len(marked) == 1
                assert len(running.bridge.handled) == handled_before + 1
            else:
                assert isinstance(body.get("errcode"), str)
                assert marked == []
                assert len(running.bridge.handled) == handled_before

        check()
        assert {200, 400} <= statuses  # both accepted and rejected bodies were tried
        # The server still answers normally afterwards.
        status, body, _ = loop.run_until_complete(running.put_txn("final", {"events": [EVENT]}))
        assert (status, body) == (200, {})
    finally:
        loop.run_until_complete(stop_server(running))
        loop.close()
