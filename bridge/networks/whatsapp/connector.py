"""The WhatsApp connector: one neonize client per login, restored at start.

Each login's whatsmeow session lives in its own SQLite file under ``session_dir`` (see
docs/whatsapp.md for what it holds); the bridge's database only keeps the file's random
name. Events are handled in order per login (``session.Session``) and converted by
``incoming.Incoming``; sends are built by ``outgoing`` and ``format``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ...config import ConfigError

try:
    from . import neonize_api as api
except ImportError as e:  # the extra is not installed
    raise ConfigError(
        f"the WhatsApp network needs neonize ({e}): pip install 'hub-bridge[whatsapp]'"
    ) from None

import aiohttp

from ...core.connector import (
    Capabilities,
    Connector,
    LoginFlow,
    LoginProcess,
    LoginRecord,
    NetworkLogin,
)
from ...core.events import MediaKind, RemoteMedia
from ...core.ids import NetworkID, UserID
from ...core.text import EntityType
from .config import WhatsAppConfig
from .format import SUPPORTED
from .ids import IdScheme, Jid
from .login import PairingCodeLogin, QrLogin
from .session import ClientFactory, Session, SessionStore
from .account import WhatsAppLogin

log = logging.getLogger("bridge.networks.whatsapp")


class WhatsAppConnector(Connector):
    network = NetworkID("whatsapp")
    display_name = "WhatsApp"
    config_class = WhatsAppConfig
    capabilities = Capabilities(
        edits=True,
        reactions=True,
        redactions=True,
        typing=True,
        read_receipts=True,
        replies=True,
        group_management=True,
        media=frozenset(MediaKind),
        formatting=frozenset(SUPPORTED) | {EntityType.MENTION},
        max_text_length=65536,
    )

    client_factory: ClientFactory = staticmethod(api.new_client)
    """Makes neonize clients; tests put a fake of neonize's client here before ``start``."""

    def __init__(self, config: WhatsAppConfig, host: Any, network: NetworkID | None = None) -> None:
        super().__init__(config, host, network)
        self.config: WhatsAppConfig = config
        self.display_name = config.display_name
        self._ids: IdScheme | None = None
        self._sessions: SessionStore | None = None
        self._handover: dict[str, Session] = {}
        self._http: aiohttp.ClientSession | None = None

    @property
    def ids(self) -> IdScheme:
        assert self._ids is not None, "the connector was not started"
        return self._ids

    @property
    def sessions(self) -> SessionStore:
        assert self._sessions is not None, "the connector was not started"
        return self._sessions

    async def start(self) -> None:
        secret = await asyncio.to_thread(self.config.load_id_secret)
        self._ids = IdScheme(secret)
        self._sessions = SessionStore(self.config.session_path, self.client_factory, self.config.device_name)
        log.info("WhatsApp sessions in %s", self.config.session_path)

    async def stop(self) -> None:
        for session in self._handover.values():
            await session.close()
        self._handover.clear()
        if self._sessions is not None:
            await self._sessions.close_all()
        if self._http is not None:
            await self._http.close()

    def login_flows(self) -> list[LoginFlow]:
        return [
            LoginFlow("qr", "QR code", "Scan a QR code with WhatsApp on your phone"),
            LoginFlow("phone", "Pairing code", "Enter a code on your phone; needs your phone number"),
        ]

    def start_login(self, owner: UserID, flow_id: str) -> LoginProcess:
        if flow_id == "phone":
            return PairingCodeLogin(self, owner)
        return QrLogin(self, owner)

    def load_login(self, record: LoginRecord) -> NetworkLogin:
        return WhatsAppLogin(self, record)

    # Used by logins and login processes ----------------------------------------------

    def hand_over(self, session: Session) -> None:
        """A freshly paired session, running, for the login about to be created."""
        self._handover[session.key] = session

    def take_session(self, key: str) -> Session:
        return self._handover.pop(key, None) or self.sessions.open(key)

    async def fetch_url(self, url: str) -> bytes:
        """Download a profile picture from WhatsApp's media servers."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        async with self._http.get(url) as response:
            response.raise_for_status()
            return await response.read()

    async def avatar(self, client: Any, jid: Jid) -> tuple[RemoteMedia | None, str | None]:
        """A person's or group's current picture, fetched only when the core needs it."""
        try:
            picture = await client.get_profile_picture(
                api.to_proto(jid), api.neonize_proto.GetProfilePictureParams(Preview=False)
            )
        except Exception:
            return None, None  # no picture, or hidden by the person's privacy settings
        if not picture.URL or not picture.ID:
            return None, None
        url = picture.URL

        async def fetch() -> bytes:
            return await self.fetch_url(url)

        media = RemoteMedia(
            kind=MediaKind.IMAGE, mime_type="image/jpeg", file_name="avatar.jpg", size=None, fetch=fetch
        )
        return media, picture.ID
