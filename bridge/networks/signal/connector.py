"""The Signal connector: logins are linked devices held by the signal-cli daemon."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from ...core.connector import Capabilities, Connector, LoginFlow, LoginProcess, LoginRecord, NetworkLogin
from ...core.events import MediaKind
from ...core.ids import NetworkID, UserID
from .config import SignalConfig
from .format import SUPPORTED_ENTITIES
from .linking import LinkLogin
from .login import SignalLogin
from .rpc import DaemonUnavailable, SignalRpc, SignalRpcError

log = logging.getLogger("bridge.networks.signal")

MIN_VERSION = (0, 13, 0)
TESTED_VERSION = "0.13.19"


class DaemonProblem(RuntimeError):
    """The daemon is missing or unsuitable; the message tells the admin what to do."""


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


class SignalConnector(Connector):
    network = NetworkID("signal")
    display_name = "Signal"
    config_class = SignalConfig
    capabilities = Capabilities(
        edits=True,
        reactions=True,
        redactions=True,
        typing=True,
        read_receipts=True,
        replies=True,
        group_management=True,
        media=frozenset(MediaKind),
        formatting=SUPPORTED_ENTITIES,
    )

    def __init__(self, config: SignalConfig, host: Any, network: NetworkID | None = None) -> None:
        super().__init__(config, host, network)
        self.display_name = config.display_name
        self.daemon_version: str | None = None

    async def start(self) -> None:
        """Check the daemon's version; wait ``startup_wait`` seconds for it to come up."""
        deadline = time.monotonic() + self.config.startup_wait
        while True:
            try:
                rpc = await SignalRpc.open(self.config.daemon, timeout=5)
                try:
                    result = await rpc.call("version", timeout=10)
                finally:
                    await rpc.close()
                break
            except DaemonUnavailable as e:
                if time.monotonic() >= deadline:
                    raise DaemonProblem(
                        f"Signal: can't reach the signal-cli daemon at {self.config.address} ({e}). "
                        "Start it with 'signal-cli daemon --tcp 127.0.0.1:7583 --receive-mode manual' "
                        "(see docs/signal.md) or fix networks.signal.address."
                    ) from None
                await asyncio.sleep(1)
            except SignalRpcError as e:
                raise DaemonProblem(f"Signal: the daemon at {self.config.address} refused 'version': {e}") from None
        version = str((result or {}).get("version", "")) if isinstance(result, dict) else ""
        if not version or parse_version(version) < MIN_VERSION:
            raise DaemonProblem(
                f"Signal: the daemon at {self.config.address} is signal-cli {version or 'of unknown version'}; "
                f"the bridge needs {'.'.join(map(str, MIN_VERSION))} or newer (tested with {TESTED_VERSION})"
            )
        self.daemon_version = version
        log.info("Signal: signal-cli %s at %s", version, self.config.address)

    def login_flows(self) -> list[LoginFlow]:
        return [LoginFlow("qr", "QR code", "Link the bridge as a device of your Signal account, like Signal Desktop")]

    def start_login(self, owner: UserID, flow_id: str) -> LoginProcess:
        return LinkLogin(self, owner)

    def load_login(self, record: LoginRecord) -> NetworkLogin:
        return SignalLogin(self, record)
