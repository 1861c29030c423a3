"""Linking the bridge as a WhatsApp device: by QR code or by pairing code.

Both flows start a neonize client on a fresh session file. The QR flow shows each code
WhatsApp hands out (they rotate about every 20 s) in the management room; the pairing
code flow asks for the phone number, which is used for that one request only, and shows
the 8-character code to type on the phone. When the phone confirms, the login completes
by itself (``BridgeHost.login_progress``) and the running session is handed to the new
login, so nothing WhatsApp sends right after pairing is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from typing import TYPE_CHECKING, Any

from ...core.connector import LoginComplete, LoginError, LoginProcess, LoginPrompt, LoginRecord
from ...core.ids import LoginID, UserID
from .ids import Jid
from .neonize_api import ClientName, PairStatusEv, from_proto, neonize_proto

if TYPE_CHECKING:
    from .connector import WhatsAppConnector
    from .session import Session

log = logging.getLogger("bridge.networks.whatsapp.login")

LINK_HELP = "On your phone: WhatsApp > Settings > Linked devices > Link a device"
_PHONE = re.compile(r"[0-9]{7,15}")


class _PairingLogin(LoginProcess):
    """What both flows share: the session, pairing events, completion and timeout."""

    def __init__(self, connector: WhatsAppConnector, owner: UserID) -> None:
        self.connector = connector
        self.owner = owner
        self.key = secrets.token_hex(16)
        self.session: Session | None = None
        self._first_qr: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._qr_count = 0
        self._finished = False
        self._timeout: asyncio.Task[None] | None = None

    async def _start_session(self) -> None:
        self.session = self.connector.sessions.open(self.key)
        self.session.pairing = self
        try:
            task = await self.session.connect()
        except Exception as e:
            await self._discard()
            raise LoginError(f"Could not start the WhatsApp client: {e}") from None
        task.add_done_callback(self._on_client_ended)
        self._timeout = asyncio.create_task(self._expire())

    def _on_client_ended(self, task: asyncio.Future[Any]) -> None:
        if self._finished or task.cancelled() or self.session is None:
            return
        error = task.exception()
        reason = f"the WhatsApp client stopped ({error})" if error else "the WhatsApp client stopped"
        if not self._first_qr.done():
            self._first_qr.set_exception(LoginError(f"Login failed: {reason}."))
        else:
            asyncio.ensure_future(self._fail(reason))

    async def _wait_first_qr(self) -> str:
        try:
            return await asyncio.wait_for(asyncio.shield(self._first_qr), 30)
        except asyncio.TimeoutError:
            await self._discard()
            raise LoginError("WhatsApp did not answer in time; try again later.") from None
        except LoginError:
            await self._discard()
            raise

    async def _expire(self) -> None:
        await asyncio.sleep(self.connector.config.qr_timeout_seconds)
        await self._fail("nobody linked the device in time")

    async def _fail(self, reason: str) -> None:
        if self._finished:
            return
        self._finished = True
        await self.connector.host.login_progress(self.owner, LoginError(f"WhatsApp login failed: {reason}."))
        await self._discard()

    # PairingSink ---------------------------------------------------------------------

    async def on_qr(self, code: str) -> None:
        self._qr_count += 1
        if not self._first_qr.done():
            self._first_qr.set_result(code)
        elif not self._finished:
            await self.refreshed_qr(code)

    async def refreshed_qr(self, code: str) -> None:
        """A new QR code while waiting; the pairing-code flow has no use for it."""

    async def on_pair_status(self, event: PairStatusEv) -> None:
        if self._finished:
            return
        if event.Status != neonize_proto.PairStatus.SUCCESS:
            await self._fail(event.Error or "the phone refused the link")
            return
        self._finished = True
        if self._timeout is not None:
            self._timeout.cancel()
        try:
            record = await self._record(event)
        except Exception as e:
            log.exception("Reading the new WhatsApp account failed")
            await self.connector.host.login_progress(self.owner, LoginError(f"WhatsApp login failed: {e}"))
            await self._discard()
            return
        assert self.session is not None
        self.session.pairing = None
        self.connector.hand_over(self.session)
        await self.connector.host.login_progress(self.owner, LoginComplete(record))

    async def _record(self, event: PairStatusEv) -> LoginRecord:
        assert self.session is not None
        me = await self.session.client.get_me()
        phone_jid = from_proto(me.JID) or from_proto(event.ID)
        lid = from_proto(me.LID)
        if lid is not None:
            login_id = self.connector.ids.user_id(lid)
        elif phone_jid is not None:
            login_id = self.connector.ids.user_id(Jid(phone_jid.user, phone_jid.server))
        else:
            raise RuntimeError("WhatsApp did not say which account was linked")
        name = me.PushName or event.BusinessName or "your WhatsApp account"
        return LoginRecord(
            network=self.connector.network,
            login_id=LoginID(login_id),
            owner=self.owner,
            remote_name=name,
            metadata={"session": self.key, "history_chats_done": 0},
        )

    async def _discard(self) -> None:
        """Drop the session (and its file); a later attempt starts afresh."""
        if self._timeout is not None:
            self._timeout.cancel()
        if self.session is not None:
            self.session.pairing = None
            await self.connector.sessions.delete(self.key)
            self.session = None
            # neonize stops a key's Go client when an old client object is collected:
            # never reuse a key.
            self.key = secrets.token_hex(16)
        if not self._first_qr.done():
            self._first_qr.cancel()
        self._first_qr = asyncio.get_running_loop().create_future()

    async def cancel(self) -> None:
        if not self._finished:
            self._finished = True
            await self._discard()


class QrLogin(_PairingLogin):
    async def start(self) -> LoginPrompt:
        await self._start_session()
        code = await self._wait_first_qr()
        return LoginPrompt(
            f"{LINK_HELP}, and scan this QR code. New codes follow as WhatsApp replaces them.",
            expects_input=False,
            qr_data=code,
        )

    async def refreshed_qr(self, code: str) -> None:
        await self.connector.host.login_progress(
            self.owner, LoginPrompt("WhatsApp replaced the QR code: scan this one.", expects_input=False, qr_data=code)
        )

    async def submit(self, text: str) -> LoginPrompt:
        raise LoginError("Scan the QR code with your phone.")


class PairingCodeLogin(_PairingLogin):
    async def start(self) -> LoginPrompt:
        return LoginPrompt(
            "Send the phone number of your WhatsApp account in international format "
            "(e.g. +49 151 23456789). It is used only to ask WhatsApp for a pairing code "
            "and is not stored.",
            secret=True,
        )

    async def submit(self, text: str) -> LoginPrompt:
        if self.session is not None:
            raise LoginError("Enter the pairing code on your phone.")
        digits = re.sub(r"[\s+().\-/]", "", text)
        if digits.startswith("00"):
            digits = digits[2:]
        if not _PHONE.fullmatch(digits):
            raise LoginError("That is not a phone number in international format.")
        await self._start_session()
        await self._wait_first_qr()  # the connection is ready for pairing
        assert self.session is not None
        try:
            code = await self.session.client.PairPhone(digits, True, ClientName.LINUX)
        except Exception as e:
            await self._discard()
            raise LoginError(f"WhatsApp refused the pairing request: {e}.") from None
        return LoginPrompt(
            f"{LINK_HELP} > Link with phone number instead, and enter this code: {code}",
            expects_input=False,
        )

    async def cancel(self) -> None:
        with contextlib.suppress(Exception):
            await super().cancel()
