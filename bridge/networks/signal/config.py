"""The ``networks.signal`` section of the bridge config."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import ConfigError
from .rpc import DaemonAddress


@dataclass
class SignalConfig:
    address: str = "127.0.0.1:7583"
    """The daemon's JSON-RPC socket: ``host:port`` (``--tcp``) or a UNIX socket path (``--socket``)."""
    display_name: str = "Signal"
    device_name: str = "Hub bridge"
    """The name of the linked device, as the phone lists it."""
    show_phone_numbers: bool = False
    """Add people's phone numbers (where Signal shows them) to their Matrix display names."""
    startup_wait: float = 30.0
    """Seconds to wait for the daemon at bridge start before giving up."""
    link_timeout: float = 300.0
    """Seconds to wait for the phone to scan the QR code."""
    request_timeout: float = 120.0
    """Seconds one daemon call may take (sending a large file takes a while)."""

    def validate(self) -> None:
        try:
            DaemonAddress.parse(self.address)
        except ValueError as e:
            raise ConfigError(f"'networks.signal.address': {e}") from None
        for name in ("startup_wait", "link_timeout", "request_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"'networks.signal.{name}' must be a positive number of seconds")

    @property
    def daemon(self) -> DaemonAddress:
        return DaemonAddress.parse(self.address)
