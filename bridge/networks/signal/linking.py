"""Log in by linking the bridge as a secondary device of the user's Signal account.

``startLink`` gives a ``sgnl://linkdevice`` URI, shown as a QR code in the management room;
``finishLink`` returns once the phone has scanned it (or fails when the code expires).
That wait runs on its own daemon connection, and its end is reported through
``BridgeHost.login_progress``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from ...core.connector import LoginComplete, LoginError, LoginProcess, LoginPrompt, LoginRecord
from ...core.ids import LoginID, UserID
from .directory import contact_name
from .ids import normalize_aci
from .rpc import DaemonUnavailable, SignalRpc, SignalRpcError

if TYPE_CHECKING:
    from .connector import SignalConnector

log = logging.getLogger("bridge.networks.signal.linking")

SCAN_HELP = (
    "Scan this QR code with Signal on your phone: Settings, Linked devices, Link new device. "
    "The bridge then reads and sends your Signal messages like Signal Desktop does. "
    "Send 'cancel' to stop."
)


class LinkLogin(LoginProcess):
    def __init__(self, connector: SignalConnector, owner: UserID) -> None:
        self.connector = connector
        self.owner = owner
        self._rpc: SignalRpc | None = None
        self._waiter: asyncio.Task[None] | None = None

    async def start(self) -> LoginPrompt:
        config = self.connector.config
        try:
            self._rpc = await SignalRpc.open(config.daemon, timeout=config.startup_wait)
            result = await self._rpc.call("startLink", timeout=config.request_timeout)
            uri = str(result["deviceLinkUri"])
        except DaemonUnavailable as e:
            await self.cancel()
            raise LoginError(f"The bridge can't reach its Signal service ({e}). Tell the bridge admin.") from None
        except (SignalRpcError, KeyError, TypeError) as e:
            await self.cancel()
            raise LoginError(f"Signal did not start the link: {e}") from None
        self._waiter = asyncio.create_task(self._wait_for_scan(uri), name=f"signal-link-{self.owner}")
        return LoginPrompt(SCAN_HELP, expects_input=False, qr_data=uri)

    async def _wait_for_scan(self, uri: str) -> None:
        config = self.connector.config
        assert self._rpc is not None
        try:
            result = await self._rpc.call(
                "finishLink", {"deviceLinkUri": uri, "deviceName": config.device_name}, timeout=config.link_timeout
            )
            record = await self._record(str(result["number"]))
            step: LoginComplete | LoginError = LoginComplete(record)
        except asyncio.CancelledError:
            raise
        except LoginError as e:
            step = e
        except DaemonUnavailable:
            step = LoginError(
                "The QR code was not scanned in time (or the Signal service went away). "
                "Send 'login signal' for a new one."
            )
        except SignalRpcError as e:
            step = LoginError(f"Signal refused the link: {e.message}")
        except Exception as e:
            log.exception("Finishing a Signal link failed")
            step = LoginError(f"linking failed ({type(e).__name__})")
        finally:
            if self._rpc is not None:
                await self._rpc.close()
        await self.connector.host.login_progress(self.owner, step)

    async def _record(self, number: str) -> LoginRecord:
        """The new login: its id is the account's ACI, which the daemon knows once linked."""
        assert self._rpc is not None
        contacts = await self._rpc.call(
            "listContacts",
            {"account": number, "recipient": [number], "allRecipients": True},
            timeout=self.connector.config.request_timeout,
        )
        own = next((c for c in contacts if isinstance(c, dict) and normalize_aci(c.get("uuid"))), None)
        if own is None:
            raise LoginError("Signal linked, but the account's id is unknown; try again in a minute.")
        aci = normalize_aci(own["uuid"])
        assert aci is not None
        return LoginRecord(
            network=self.connector.network,
            login_id=LoginID(aci),
            owner=self.owner,
            remote_name=contact_name(own) or "your Signal account",
            metadata={"account": number},
        )

    async def submit(self, text: str) -> LoginPrompt:
        raise LoginError("There is nothing to type: scan the QR code with Signal on your phone.")

    async def cancel(self) -> None:
        if self._waiter is not None and self._waiter is not asyncio.current_task():
            self._waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._waiter
        if self._rpc is not None:
            await self._rpc.close()
            self._rpc = None
