"""The Telegram connector's section of the bridge config."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import ConfigError

# Values from the example config and Telegram's public documentation samples.
_EXAMPLE_API_IDS = {0, 12345, 123456}
_EXAMPLE_API_HASHES = {"", "0123456789abcdef0123456789abcdef", "your-api-hash"}


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
