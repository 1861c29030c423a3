"""The Telegram connector's section of the bridge config."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import ConfigError
from .server import PRODUCTION_ENTRY_POINTS, SERVER_KEY, ServerPublicKey, load_public_key

# Values from the example config and Telegram's public documentation samples.
_EXAMPLE_API_IDS = {0, 12345, 123456}
_EXAMPLE_API_HASHES = {"", "0123456789abcdef0123456789abcdef", "your-api-hash"}


@dataclass
class TelegramServerConfig:
    """A server to use instead of Telegram's production data centres: one of Telegram's
    test servers, or a Telegram-compatible server."""

    dc_id: int = 0
    """The data centre id the server answers as (e.g. 2 for Telegram's test DC 2)."""
    address: str = ""
    port: int = 443
    public_key: str = ""
    """The server's RSA public key, PEM text or the path of a PEM file. Empty: the server
    signs with a key Telethon already knows (Telegram's own)."""
    allow_sign_up: bool = False
    """Create an account when the server has none for the phone number. Only ever on
    this configured server: without a ``server`` section there is no sign-up."""
    key: ServerPublicKey | None = field(default=None, metadata={"internal": True})
    """The parsed ``public_key`` (set by :meth:`validate`)."""

    def validate(self) -> None:
        if self.dc_id <= 0:
            raise ConfigError(f"'{SERVER_KEY}.dc_id' must be the server's data centre id (1 or more)")
        if not self.address.strip() or any(c.isspace() for c in self.address.strip()):
            raise ConfigError(f"'{SERVER_KEY}.address' must be the server's host name or IP address")
        self.address = self.address.strip()
        if not 0 < self.port < 65536:
            raise ConfigError(f"'{SERVER_KEY}.port' must be a TCP port (1-65535), not {self.port}")
        self.key = load_public_key(self.public_key) if self.public_key.strip() else None
        if self.allow_sign_up and self.address.lower() in PRODUCTION_ENTRY_POINTS:
            raise ConfigError(
                f"'{SERVER_KEY}.allow_sign_up': {self.address} is one of Telegram's production "
                "servers, where the bridge never signs up accounts"
            )


@dataclass
class TelegramConfig:
    api_id: int = 0
    """From https://my.telegram.org (API development tools)."""
    api_hash: str = ""
    display_name: str = "Telegram"
    double_puppet: bool = True
    """Messages the user sends from another Telegram app are marked as their own, so the
    core shows them as the user (today: the user's ghost) instead of a stranger."""
    share_contact_numbers: bool = False
    """Show the phone number of a shared contact card. Off: only the contact's name."""
    device_model: str = "Hub bridge"
    """How the session appears in Telegram's list of active sessions."""
    connect_timeout: int = 10
    sync_chat_limit: int = 100
    """How many recent chats 'sync' turns into rooms."""
    server: TelegramServerConfig | None = None
    """Off by default (Telegram's production data centres)."""

    @property
    def sign_up_allowed(self) -> bool:
        """Only on a configured server whose section allows it; never in production."""
        return self.server is not None and self.server.allow_sign_up

    def validate(self) -> None:
        if self.api_id in _EXAMPLE_API_IDS or self.api_id <= 0:
            raise ConfigError(
                "'networks.telegram.api_id' is not set: get your own from "
                "https://my.telegram.org (API development tools)"
            )
        if self.api_hash.strip().lower() in _EXAMPLE_API_HASHES or len(self.api_hash) != 32:
            raise ConfigError(
                "'networks.telegram.api_hash' is not set: use the 32-character hash that "
                "belongs to your api_id"
            )
        if self.server is not None:
            self.server.validate()
