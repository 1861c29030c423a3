"""A fake of neonize's client object, for tests: no WhatsApp server is reachable here.

``FakeNeonizeClient`` has the methods (same names and signatures, checked against
``neonize.aioze.client.NewAClient`` in test_fake_contract.py) that the connector uses.
Events go through neonize's real dispatcher: ``emit`` serialises a real neonize protobuf
event and hands the bytes to ``neonize.aioze.events.Event.execute``, exactly as the Go
library does. ``FakeWhatsApp`` is the server side: accounts, groups, media, pictures, and
messages kept for a device while it is offline (as WhatsApp does).
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import itertools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from neonize.aioze import events as neonize_events
from neonize.events import EVENT_TO_INT
from neonize.exc import (
    DownloadError,
    GetGroupInfoError,
    GetProfilePictureError,
    PairPhoneError,
    SendMessageError,
    SetGroupNameError,
    SetGroupPhotoError,
    SetGroupTopicError,
    UpdateGroupParticipantsError,
)
from neonize.proto import Neonize_pb2 as neo
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa
from neonize.utils.enum import (
    ChatPresence, ChatPresenceMedia, ClientName, MediaType, ParticipantChange, ReceiptType,
)  # fmt: skip

from bridge.networks.whatsapp.neonize_api import ConnectedEv, PairStatusEv


def complete(message: Any) -> Any:
    """Fill the required fields a test left out with their defaults, as the Go side's
    encoders always set every field (the protobufs are proto2 with required fields)."""
    for f in message.DESCRIPTOR.fields:
        if f.message_type is not None:
            if f.is_repeated:
                for item in getattr(message, f.name):
                    complete(item)
            elif f.is_required or message.HasField(f.name):
                getattr(message, f.name).SetInParent()
                complete(getattr(message, f.name))
        elif f.is_required and not message.HasField(f.name):
            setattr(message, f.name, f.default_value)
    return message


def jid(user: str, server: str = "s.whatsapp.net") -> neo.JID:
    return neo.JID(User=user, Server=server, Device=0, RawAgent=0, Integrator=0, IsEmpty=False)


@dataclass
class Account:
    phone: str
    lid: str
    push_name: str

    @property
    def pn_jid(self) -> neo.JID:
        return jid(self.phone)

    @property
    def lid_jid(self) -> neo.JID:
        return jid(self.lid, "lid")


@dataclass
class FakeWhatsApp:
    """The server side shared by every fake client of a test run."""

    accounts: dict[str, Account] = field(default_factory=dict)
    groups: dict[str, neo.GroupInfo] = field(default_factory=dict)
    clients: dict[str, FakeNeonizeClient] = field(default_factory=dict)
    paired: dict[str, Account] = field(default_factory=dict)
    """Session database -> the account linked there (what whatsmeow keeps in the file)."""
    media: dict[str, bytes] = field(default_factory=dict)
    pictures: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    picture_base_url: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def factory(self, database: str, session_key: str, device_name: str) -> FakeNeonizeClient:
        client = FakeNeonizeClient(self, database, session_key)
        self.clients[database] = client
        return client

    def account(self, phone: str, push_name: str) -> Account:
        lid = str(100000000000000 + next(self._ids))
        account = self.accounts[phone] = Account(phone, lid, push_name)
        return account

    def message_id(self) -> str:
        return "3EB0" + secrets.token_hex(8).upper()

    def add_group(self, name: str, members: Sequence[Account], topic: str = "") -> neo.GroupInfo:
        group_id = str(120363000000000000 + next(self._ids))
        info = neo.GroupInfo(
            JID=jid(group_id, "g.us"),
            GroupName=neo.GroupName(Name=name),
            GroupTopic=neo.GroupTopic(Topic=topic),
            Participants=[neo.GroupParticipant(JID=m.lid_jid, PhoneNumber=m.pn_jid) for m in members],
        )
        self.groups[group_id] = info
        return info

    def set_picture(self, target: neo.JID, picture_id: str, data: bytes) -> None:
        self.pictures[f"{target.User}@{target.Server}"] = (picture_id, data)

    async def serve_pictures(self) -> web.AppRunner:
        """Profile pictures over HTTP on 127.0.0.1, like WhatsApp's media servers."""

        async def picture(request: web.Request) -> web.Response:
            for picture_id, data in self.pictures.values():
                if picture_id == request.match_info["id"]:
                    return web.Response(body=data, content_type="image/jpeg")
            raise web.HTTPNotFound()

        app = web.Application()
        app.router.add_get("/pp/{id}", picture)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.picture_base_url = f"http://127.0.0.1:{port}/pp/"
        return runner


class FakeContactStore:
    def __init__(self, world: FakeWhatsApp) -> None:
        self.world = world

    async def get_contact(self, user: neo.JID) -> neo.ContactInfo:
        for account in self.world.accounts.values():
            if user.User in (account.phone, account.lid):
                return neo.ContactInfo(Found=True, PushName=account.push_name,
                                       FullName=f"{account.push_name} (address book)")  # fmt: skip
        return neo.ContactInfo(Found=False)

    async def get_all_contacts(self) -> list[neo.Contact]:
        return [
            neo.Contact(JID=a.pn_jid, Info=neo.ContactInfo(Found=True, PushName=a.push_name))
            for a in self.world.accounts.values()
        ]


class FakeNeonizeClient:
    """Stands in for ``neonize.aioze.client.NewAClient`` (one per session database)."""

    def __init__(self, world: FakeWhatsApp, database: str, session_key: str) -> None:
        self.world = world
        self.name = database
        self.uuid = session_key.encode()
        self.event = neonize_events.Event(self)  # neonize's own dispatcher
        self.contact = FakeContactStore(world)
        self.sent: list[tuple[neo.JID, wa.Message]] = []
        self.calls: list[tuple[str, Any]] = []
        self.offline: list[Any] = []
        self.connect_failures = 0
        self.fail_sends: str | None = None
        self.pair_phone: str | None = None
        self._task: asyncio.Future[None] | None = None
        self._connected = asyncio.Event()

    # Test controls -------------------------------------------------------------------

    @property
    def account(self) -> Account | None:
        return self.world.paired.get(self.name)

    @property
    def is_online(self) -> bool:
        return self._task is not None and not self._task.done()

    async def wait_connected(self, timeout: float = 10) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    def emit(self, event: Any) -> None:
        """Deliver an event the way the Go library does, or keep it until the device
        connects (WhatsApp holds messages for an offline device)."""
        if not self.is_online:
            self.offline.append(event)
            return
        data = complete(event).SerializeToString()
        buffer = ctypes.create_string_buffer(data, len(data) or 1)
        self.event.execute(0, ctypes.addressof(buffer), len(data), EVENT_TO_INT[type(event)])

    def show_qr(self, code: str) -> None:
        loop = neonize_events.event_global_loop
        assert loop is not None
        asyncio.run_coroutine_threadsafe(self.event._qr(self, code.encode()), loop)

    def complete_pairing(self, account: Account) -> None:
        """The phone scanned the QR code (or took the pairing code)."""
        self.world.paired[self.name] = account
        self.emit(PairStatusEv(ID=account.pn_jid, Status=neo.PairStatus.SUCCESS))
        self.emit(ConnectedEv(status=True))
        self._connected.set()

    def sent_messages(self) -> list[wa.Message]:
        return [message for _, message in self.sent]

    # NewAClient ----------------------------------------------------------------------

    async def connect(self, proxy_settings: Any = None) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        neonize_events.set_event_loop(loop)
        self._task = loop.create_future()
        self.calls.append(("connect", None))
        if self.connect_failures:
            self.connect_failures -= 1
            self._task.set_exception(RuntimeError("dial tcp: connection refused"))
            return self._task
        if self.account is None:
            loop.call_soon(self.show_qr, f"2@{secrets.token_urlsafe(24)}")
        else:
            loop.call_soon(self._come_online)
        return self._task

    def _come_online(self) -> None:
        self.emit(ConnectedEv(status=True))
        waiting, self.offline = self.offline, []
        for event in waiting:
            self.emit(event)
        self._connected.set()

    async def stop(self) -> None:
        self.calls.append(("stop", None))
        self._connected.clear()
        if self._task is not None and not self._task.done():
            self._task.set_result(None)

    async def disconnect(self) -> None:
        await self.stop()

    async def PairPhone(
        self,
        phone: str,
        show_push_notification: bool,
        client_name: ClientName = ClientName.LINUX,
        client_type: Any = None,
    ) -> str:
        if not phone.isdigit():
            raise PairPhoneError("invalid phone number")
        self.pair_phone = phone
        return "ABCD-EFGH"

    async def get_me(self) -> neo.Device:
        account = self.account
        if account is None:
            return neo.Device()
        return neo.Device(JID=account.pn_jid, LID=account.lid_jid, PushName=account.push_name)

    async def send_message(
        self,
        to: neo.JID | str,
        message: wa.Message | str,
        link_preview: bool = False,
        ghost_mentions: str | None = None,
        mentions_are_lids: bool = False,
        add_msg_secret: bool = False,
    ) -> neo.SendResponse:
        if self.fail_sends:
            raise SendMessageError(self.fail_sends)
        assert isinstance(to, neo.JID) and isinstance(message, wa.Message)
        self.sent.append((to, message))
        return neo.SendResponse(ID=self.world.message_id(), Timestamp=1_700_000_000)

    async def upload(self, binary: bytes, media_type: MediaType | None = None) -> neo.UploadResponse:
        path = f"/v/t62/{secrets.token_hex(8)}"
        self.world.media[path] = binary
        digest = hashlib.sha256(binary).digest()
        return neo.UploadResponse(
            url=f"https://mmg.whatsapp.net{path}", DirectPath=path, MediaKey=secrets.token_bytes(32),
            FileSHA256=digest, FileEncSHA256=digest, FileLength=len(binary),
        )  # fmt: skip

    async def download_any(self, message: wa.Message, path: str | None = None) -> bytes | None:
        for field_name in ("imageMessage", "videoMessage", "audioMessage", "documentMessage", "stickerMessage"):
            if message.HasField(field_name):
                data = self.world.media.get(getattr(message, field_name).directPath)
                if data is not None:
                    return data
        raise DownloadError("media not found")

    async def get_group_info(self, jid: neo.JID) -> neo.GroupInfo:
        group = self.world.groups.get(jid.User)
        if group is None:
            raise GetGroupInfoError("item-not-found")
        return group

    async def get_joined_groups(self) -> list[neo.GroupInfo]:
        account = self.account
        return [
            g for g in self.world.groups.values()
            if account and any(p.JID.User == account.lid for p in g.Participants)
        ]  # fmt: skip

    async def get_profile_picture(
        self, jid: neo.JID, extra: neo.GetProfilePictureParams = neo.GetProfilePictureParams()
    ) -> neo.ProfilePictureInfo:
        picture = self.world.pictures.get(f"{jid.User}@{jid.Server}")
        if picture is None:
            raise GetProfilePictureError(neo.GetProfilePictureReturnFunction(Error="item-not-found"))
        return neo.ProfilePictureInfo(URL=self.world.picture_base_url + picture[0], ID=picture[0])

    async def mark_read(
        self, *message_ids: str, chat: neo.JID, sender: neo.JID, receipt: ReceiptType,
        timestamp: int | None = None,
    ) -> None:  # fmt: skip
        self.calls.append(("mark_read", (message_ids, chat, sender, receipt)))

    async def send_chat_presence(self, jid: neo.JID, state: ChatPresence, media: ChatPresenceMedia) -> None:
        self.calls.append(("send_chat_presence", (jid, state)))

    async def logout(self) -> None:
        self.calls.append(("logout", None))
        self.world.paired.pop(self.name, None)

    async def get_lid_from_pn(self, jid: neo.JID) -> neo.JID:
        account = self.world.accounts.get(jid.User)
        return account.lid_jid if account else neo.JID(IsEmpty=True)

    async def get_pn_from_lid(self, jid: neo.JID) -> neo.JID:
        for account in self.world.accounts.values():
            if account.lid == jid.User:
                return account.pn_jid
        return neo.JID(IsEmpty=True)

    async def create_group(
        self, name: str, participants: list[neo.JID] = [], linked_parent: Any = None, group_parent: Any = None
    ) -> neo.GroupInfo:
        members = [a for a in self.world.accounts.values() if any(p.User in (a.lid, a.phone) for p in participants)]
        if self.account is not None:
            members.append(self.account)
        return self.world.add_group(name, members)

    # Group admin: WhatsApp lets only admins add or remove people, and only admins edit
    # the info of a locked group; refusals read as whatsmeow's.

    def _group_for_change(self, jid: neo.JID, info_change: bool, error: type[Exception]) -> neo.GroupInfo:
        group = self.world.groups.get(jid.User)
        account = self.account
        me = next((p for p in group.Participants if account and p.JID.User == account.lid), None) if group else None
        if group is None or me is None:
            raise error("info query returned status 404: item-not-found")
        if not me.IsAdmin and not (info_change and not group.GroupLocked.isLocked):
            raise error("info query returned status 403: forbidden")
        return group

    async def set_group_name(self, jid: neo.JID, name: str) -> None:
        self.calls.append(("set_group_name", (jid, name)))
        self._group_for_change(jid, True, SetGroupNameError).GroupName.Name = name

    async def set_group_topic(self, jid: neo.JID, previous_id: str, new_id: str, topic: str):
        self.calls.append(("set_group_topic", (jid, topic)))
        group = self._group_for_change(jid, True, SetGroupTopicError)
        group.GroupTopic.Topic = topic
        group.GroupTopic.TopicID = new_id or secrets.token_hex(8)

    async def set_group_photo(self, jid: neo.JID, file_or_bytes: str | bytes) -> str:
        assert isinstance(file_or_bytes, bytes)
        self.calls.append(("set_group_photo", (jid, file_or_bytes)))
        self._group_for_change(jid, True, SetGroupPhotoError)
        picture_id = secrets.token_hex(6)
        self.world.set_picture(jid, picture_id, file_or_bytes)
        return picture_id

    async def update_group_participants(
        self, jid: neo.JID, participants_changes: list[neo.JID], action: ParticipantChange
    ):
        self.calls.append(("update_group_participants", (jid, list(participants_changes), action)))
        group = self._group_for_change(jid, False, UpdateGroupParticipantsError)
        results = []
        for change in participants_changes:
            account = next((a for a in self.world.accounts.values() if change.User in (a.lid, a.phone)), None)
            present = [p for p in group.Participants if account and p.JID.User == account.lid]
            if account is None:
                results.append(neo.GroupParticipant(JID=change, Error=404))
            elif action is ParticipantChange.ADD and not present:
                group.Participants.append(neo.GroupParticipant(JID=account.lid_jid, PhoneNumber=account.pn_jid))
                results.append(neo.GroupParticipant(JID=account.lid_jid))
            elif action is ParticipantChange.REMOVE and present:
                group.Participants.remove(present[0])
                results.append(neo.GroupParticipant(JID=account.lid_jid))
            else:
                results.append(neo.GroupParticipant(JID=account.lid_jid, Error=409 if present else 404))
        return results
