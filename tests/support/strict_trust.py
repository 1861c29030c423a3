"""A strict test client: trusts only devices cross-signed by their owners.

matrix-nio 0.26 has no cross-signing (it neither reads nor checks master and self-signing
keys), so it cannot be told to "exclude insecure devices" by itself. ``StrictTrust``
makes a nio client behave like a client in that mode, following the Rust crypto's rule
for cross-signing trust (a device is trusted when it is signed by its user's
self-signing key, and that key by the user's master key; signatures checked, from the
server's raw ``/keys/query`` answer, with signedjson/PyNaCl, not the bridge's code):

* **sending**: before each message, every device of the room's members is checked;
  cross-signed devices are marked verified in nio, others blacklisted, and nio sends
  with ``ignore_unverified_devices=False`` — so room keys reach cross-signed devices
  only, and nio raises rather than share a key with a device nobody checked;
* **receiving**: when a room key arrives (to-device ``m.room_key``), the sending device
  is checked at that moment, as the Rust crypto records its sender data on arrival;
  :meth:`StrictTrust.require_trusted` refuses a message whose session came from a device
  that was not cross-signed then, or is not now, or that is not the sender's own.

The "legacy" half of Rust's "cross-signed or legacy" (sessions received before trust was
recorded) never applies here: every session these tests see is new, so the check is
plain "cross-signed".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from nio import ForwardedRoomKeyEvent, RoomKeyEvent, RoomSendResponse
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import SignatureVerifyException, verify_signed_json
from unpaddedbase64 import decode_base64

from tests.support.matrix_client import MatrixTestError, TestClient, _checked


class StrictRejection(AssertionError):
    """The strict client refuses a message (its sending device is not cross-signed)."""


@dataclass(frozen=True)
class Verdict:
    user_id: str
    device_id: str | None
    cross_signed: bool
    reason: str
    checked_at: float


def _verify_key(key_object: dict[str, Any]):
    (key_id, public), = key_object["keys"].items()
    return decode_verify_key_bytes(key_id, decode_base64(public))


def cross_signing_verdict(raw: dict[str, Any], user_id: str, device_id: str | None) -> Verdict:
    """The Rust crypto's "cross-signed by its owner" rule over a raw key query answer."""

    def verdict(ok: bool, reason: str) -> Verdict:
        return Verdict(user_id, device_id, ok, reason, time.monotonic())

    device = (raw.get("device_keys", {}).get(user_id) or {}).get(device_id or "")
    if device is None:
        return verdict(False, "device unknown to the homeserver")
    master = raw.get("master_keys", {}).get(user_id)
    self_signing = raw.get("self_signing_keys", {}).get(user_id)
    if master is None or self_signing is None:
        return verdict(False, "user has no cross-signing identity")
    if "master" not in master.get("usage", []) or "self_signing" not in self_signing.get("usage", []):
        return verdict(False, "cross-signing keys with the wrong usage")
    try:
        verify_signed_json(self_signing, user_id, _verify_key(master))
    except SignatureVerifyException:
        return verdict(False, "self-signing key not signed by the master key")
    try:
        verify_signed_json(device, user_id, _verify_key(self_signing))
    except SignatureVerifyException:
        return verdict(False, "device not signed by the self-signing key")
    return verdict(True, "cross-signed by its owner")


@dataclass
class StrictTrust:
    """Makes ``client`` exclude devices that are not cross-signed, both ways."""

    client: TestClient
    homeserver_url: str
    session_origins: dict[str, Verdict] = field(default_factory=dict)
    """Verdict on the sending device of each room key, taken when the key arrived."""
    excluded: dict[tuple[str, str], str] = field(default_factory=dict)
    """Devices the client refused to send keys to, with the reason."""
    trusted: set[tuple[str, str]] = field(default_factory=set)

    def install(self) -> StrictTrust:
        self.client.nio.add_to_device_callback(self._on_room_key, (RoomKeyEvent, ForwardedRoomKeyEvent))
        return self

    async def query(self, users: list[str]) -> dict[str, Any]:
        """The homeserver's raw ``/keys/query`` answer for ``users``."""
        url = f"{self.homeserver_url}/_matrix/client/v3/keys/query"
        headers = {"Authorization": f"Bearer {self.client.nio.access_token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(url, json={"device_keys": {u: [] for u in users}}) as resp:
                assert resp.status == 200, await resp.text()
                return dict(await resp.json())

    async def device_verdict(self, user_id: str, device_id: str) -> Verdict:
        return cross_signing_verdict(await self.query([user_id]), user_id, device_id)

    async def _device_by_curve_key(self, raw: dict[str, Any], user_id: str, curve: str) -> str | None:
        for device_id, device in (raw.get("device_keys", {}).get(user_id) or {}).items():
            if device.get("keys", {}).get(f"curve25519:{device_id}") == curve:
                return str(device_id)
        return None

    async def _on_room_key(self, event: Any) -> None:
        if isinstance(event, ForwardedRoomKeyEvent):
            # A forwarded key says nothing about who made the session: never trusted.
            self.session_origins[event.session_id] = Verdict(
                event.sender, None, False, "forwarded key", time.monotonic()
            )
            return
        raw = await self.query([event.sender])
        device_id = await self._device_by_curve_key(raw, event.sender, event.sender_key)
        self.session_origins[event.session_id] = cross_signing_verdict(raw, event.sender, device_id)

    async def require_trusted(self, event: Any) -> Verdict:
        """Refuse (raise) unless the message's session came from a cross-signed device of
        its sender when the key arrived, and that device is still cross-signed now."""
        if not getattr(event, "decrypted", False):
            raise StrictRejection(f"{event.event_id} is not an encrypted message")
        origin = self.session_origins.get(event.session_id)
        if origin is None:
            raise StrictRejection(f"{event.event_id}: its room key never came as m.room_key")
        if origin.user_id != event.sender:
            raise StrictRejection(f"{event.event_id}: session of {origin.user_id}, sent by {event.sender}")
        if not origin.cross_signed:
            raise StrictRejection(f"{event.event_id} from {event.sender}: when its key came, "
                                  f"the device {origin.device_id} was refused: {origin.reason}")
        now = await self.device_verdict(origin.user_id, origin.device_id or "")
        if not now.cross_signed:
            raise StrictRejection(f"{event.event_id} from {event.sender}: device "
                                  f"{origin.device_id} is no longer trusted: {now.reason}")
        return origin

    async def wait_for_trusted(self, room_id: str, body: str, timeout: float = 20) -> Any:
        """Wait for the text message ``body`` in the room and insist that it is trusted."""
        event = await self.client.wait_for_event(
            room_id, lambda e: getattr(e, "body", None) == body, timeout
        )
        await self.require_trusted(event)
        return event

    async def send_text(self, room_id: str, body: str) -> str:
        """Send like a client that shares room keys only with cross-signed devices."""
        nio = self.client.nio
        room = nio.rooms[room_id]
        before = set(room.users)
        await _checked(nio.joined_members(room_id))
        if set(room.users) != before and nio.olm is not None:
            nio.olm.outbound_group_sessions.pop(room_id, None)
        members = sorted(room.users)
        nio.users_for_key_query.update(members)
        if nio.should_query_keys:
            await _checked(nio.keys_query())
        raw = await self.query(members)
        for user_id in members:
            for device in nio.device_store.active_user_devices(user_id):
                if user_id == nio.user_id and device.id == nio.device_id:
                    continue
                verdict = cross_signing_verdict(raw, user_id, device.id)
                if verdict.cross_signed:
                    nio.unblacklist_device(device)
                    nio.verify_device(device)
                    self.trusted.add((user_id, device.id))
                else:
                    nio.unverify_device(device)
                    nio.blacklist_device(device)
                    self.excluded[(user_id, device.id)] = verdict.reason
        content = {"msgtype": "m.text", "body": body}
        response = await nio.room_send(room_id, "m.room.message", content,
                                       ignore_unverified_devices=False)
        if not isinstance(response, RoomSendResponse):
            raise MatrixTestError(f"strict send failed: {response}")
        return str(response.event_id)
