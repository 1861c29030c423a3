"""The ``networks.whatsapp`` config section."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ...config import ConfigError


@dataclass
class WhatsAppConfig:
    session_dir: str = "whatsapp-sessions"
    """Where each login's whatsmeow session database lives (one SQLite file per login).
    A relative path is taken from the bridge's working directory."""
    id_secret: str = ""
    """Key for the hashed ids of people known only by phone number. Empty: a random key
    is created once in ``session_dir/id-secret``. Changing it changes those ids."""
    display_name: str = "WhatsApp"
    device_name: str = "Hub bridge"
    """The name the phone shows under "Linked devices"."""
    show_phone_numbers: bool = False
    """Opt-in: show a person's phone number next to their name in ghost display names."""
    use_contact_names: bool = False
    """Opt-in: name ghosts after the logged-in user's address book (visible to everyone
    who shares a room with the ghost) instead of the name each person chose."""
    history_sync_chats: int = 10
    """On the first login, bring in the most recent chats' messages; 0 turns it off."""
    history_sync_messages: int = 20
    """At most this many messages per chat from the first login's history sync."""
    history_sync_max_age_hours: int = 72
    """Skip history older than this."""
    qr_timeout_seconds: int = 160
    """Give up a QR or pairing-code login that nobody completes in this time."""
    reconnect_max_delay_seconds: float = 300.0

    def validate(self) -> None:
        if self.history_sync_chats < 0 or self.history_sync_messages < 0:
            raise ConfigError("'networks.whatsapp.history_sync_*' must not be negative")
        if self.id_secret and len(self.id_secret) < 16:
            raise ConfigError("'networks.whatsapp.id_secret' needs at least 16 characters")
        if self.qr_timeout_seconds < 20:
            raise ConfigError("'networks.whatsapp.qr_timeout_seconds' must be at least 20")

    @property
    def session_path(self) -> Path:
        return Path(self.session_dir).expanduser().absolute()

    def load_id_secret(self) -> bytes:
        """The configured key, or the one kept in the session directory (made once)."""
        if self.id_secret:
            return self.id_secret.encode("utf-8")
        directory = self.session_path
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / "id-secret"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return path.read_text().strip().encode("utf-8")
