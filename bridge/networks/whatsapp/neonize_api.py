"""The one place that imports neonize: its protobuf types, event types and client.

Importing neonize loads whatsmeow's compiled library (about 0.3 s, 19 MB). Go reads the
process environment once when the library loads, so settings for it are made here first.
"""

from __future__ import annotations

import os

# neonize adds a <bot biz_bot="1"/> node to every 1:1 message unless told not to; a
# puppeted person's messages must look like their own.
os.environ.setdefault("NEONIZE_BOT_TAG", "off")

from neonize.aioze.client import NewAClient  # noqa: E402
from neonize.aioze.events import (  # noqa: E402
    ChatPresenceEv,
    ClientOutdatedEv,
    ConnectedEv,
    ConnectFailureEv,
    DisconnectedEv,
    GroupInfoEv,
    HistorySyncEv,
    JoinedGroupEv,
    KeepAliveRestoredEv,
    KeepAliveTimeoutEv,
    LoggedOutEv,
    MessageEv,
    PairStatusEv,
    PictureEv,
    ReceiptEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.exc import NeonizeError  # noqa: E402
from neonize.proto import Neonize_pb2 as neonize_proto  # noqa: E402
from neonize.proto.Neonize_pb2 import JID  # noqa: E402
from neonize.proto.Neonize_pb2 import UndecryptableMessage as UndecryptableMessageEv  # noqa: E402
from neonize.proto.waCommon.WACommon_pb2 import MessageKey  # noqa: E402
from neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2 import DeviceProps  # noqa: E402
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa  # noqa: E402
from neonize.proto.waHistorySync import WAWebProtobufsHistorySync_pb2 as history_proto  # noqa: E402
from neonize.proto.waWeb.WAWebProtobufsWeb_pb2 import WebMessageInfo  # noqa: E402
from neonize.utils.enum import (  # noqa: E402
    ChatPresence,
    ChatPresenceMedia,
    ClientName,
    MediaType,
    ParticipantChange,
    ReceiptType,
)

from .ids import Jid  # noqa: E402

SUBSCRIBED_EVENTS = (
    ConnectedEv, DisconnectedEv, LoggedOutEv, StreamReplacedEv, TemporaryBanEv,
    ConnectFailureEv, ClientOutdatedEv, KeepAliveTimeoutEv, KeepAliveRestoredEv,
    PairStatusEv, MessageEv, ReceiptEv, ChatPresenceEv, GroupInfoEv, JoinedGroupEv,
    PictureEv, HistorySyncEv, UndecryptableMessageEv,
)  # fmt: skip
"""Every event the connector handles; neonize subscribes to them when it connects."""


def to_proto(jid: Jid) -> JID:
    return JID(User=jid.user, Server=jid.server, Device=0, RawAgent=0, Integrator=0, IsEmpty=False)


def from_proto(jid: JID) -> Jid | None:
    """The JID without its device part; None for an empty JID."""
    if jid.IsEmpty or not jid.Server:
        return None
    return Jid(jid.User, jid.Server)


def new_client(database: str, session_key: str, device_name: str) -> NewAClient:
    """A neonize client for one session database; nothing connects until ``connect``."""
    props = DeviceProps(os=device_name, platformType=DeviceProps.DESKTOP)
    return NewAClient(database, props=props, uuid=session_key)


__all__ = [
    "JID", "MessageKey", "DeviceProps", "WebMessageInfo", "NewAClient", "NeonizeError",
    "neonize_proto", "wa", "history_proto", "ChatPresence", "ChatPresenceMedia", "ClientName",
    "MediaType", "ParticipantChange", "ReceiptType", "SUBSCRIBED_EVENTS", "to_proto", "from_proto", "new_client",
    *[e.__name__ for e in SUBSCRIBED_EVENTS],
]  # fmt: skip
