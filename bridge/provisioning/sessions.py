"""Login processes driven over HTTP: the same LoginProcess objects the bot drives.

A process started here is also the user's pending login in the core (one per user, as
with the bot), so starting a login from the bot cancels one started here and the other
way round. Steps the connector reports by itself (a refreshed QR code, a scan that
completed the login) arrive through ``PendingLogin.on_progress`` and are kept as the
process's latest step for the caller to poll.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from ..core.connector import LoginComplete, LoginError, LoginPrompt, LoginRecord
from ..core.context import BridgeContext
from ..core.ids import NetworkID, UserID
from ..core.logins import PendingLogin

log = logging.getLogger("bridge.provisioning.sessions")

IDLE_TIMEOUT = 15 * 60
"""A process nobody touched for this long is cancelled."""
FINISHED_KEPT = 5 * 60
"""A finished process can be read back for this long."""


class ProcessGone(Exception):
    """No such process for this user (never existed, expired, or another user's)."""


@dataclass
class LoginSession:
    process_id: str
    owner: UserID
    network: NetworkID
    flow: str
    pending: PendingLogin | None = None
    status: str = "starting"
    """``input`` (a prompt waits for an answer), ``waiting`` (for something outside,
    e.g. a QR scan), ``complete``, ``failed`` or ``cancelled``."""
    prompt: LoginPrompt | None = None
    error: str | None = None
    login: LoginRecord | None = None
    touched: float = field(default_factory=time.monotonic)
    version: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def finished(self) -> bool:
        return self.status in ("complete", "failed", "cancelled")

    def bump(self) -> None:
        self.version += 1
        self.changed.set()
        self.changed = asyncio.Event()

    def as_json(self) -> dict[str, Any]:
        prompt = self.prompt if self.status in ("input", "waiting") else None
        return {
            "process_id": self.process_id,
            "network": self.network,
            "flow": self.flow,
            "status": self.status,
            "message": prompt.message if prompt else None,
            "secret": bool(prompt and prompt.secret),
            "qr_data": prompt.qr_data if prompt else None,
            "error": self.error,
            "login": login_json(self.login) if self.login else None,
        }


def login_json(record: LoginRecord) -> dict[str, Any]:
    return {
        "network": record.network,
        "login_id": record.login_id,
        "remote_name": record.remote_name,
        "state": record.state.value,
        "error": record.error,
    }


class LoginSessions:
    def __init__(self, ctx: BridgeContext) -> None:
        self.ctx = ctx
        self._sessions: dict[str, LoginSession] = {}

    async def get(self, owner: str, process_id: str) -> LoginSession:
        await self._expire()
        session = self._sessions.get(process_id)
        if session is None or session.owner != owner:
            raise ProcessGone(process_id)
        self._notice_cancellation(session)
        session.touched = time.monotonic()
        return session

    def pending_of(self, owner: str) -> LoginSession | None:
        """The user's login in progress here, if the core still has it pending."""
        pending = self.ctx.logins.pending.get(UserID(owner))
        for session in self._sessions.values():
            if session.pending is pending and pending is not None:
                return session
        return None

    async def start(self, owner: str, network: str, flow_id: str | None) -> LoginSession:
        """Start a login (``KeyError`` for an unknown network or flow)."""
        connector = self.ctx.logins.connector(network)
        flows = connector.login_flows()
        flow = flows[0] if flow_id is None else next((f for f in flows if f.id == flow_id), None)
        if flow is None:
            raise KeyError(f"{connector.display_name} has no login method {flow_id!r}")
        await self._expire()
        session = LoginSession(secrets.token_urlsafe(16), UserID(owner), connector.network, flow.id)
        process = connector.start_login(UserID(owner), flow.id)
        pending = PendingLogin(
            connector.network, process, room_id="",
            on_progress=lambda step: self._progress(session, step),
        )
        if (old := self.ctx.logins.pending.pop(UserID(owner), None)) is not None:
            await old.process.cancel()
        self.ctx.logins.pending[UserID(owner)] = pending
        session.pending = pending
        async with session.lock:
            try:
                step = await process.start()
            except LoginError as e:
                await self._finish(session, "failed", str(e))
            except Exception:
                log.exception("Starting a %s login failed", network)
                await self._finish(session, "failed", "internal error")
            else:
                await self._apply(session, step)
        # Visible only now, so nobody reads a process that has no first step yet.
        self._sessions[session.process_id] = session
        return session

    async def submit(self, session: LoginSession, text: str) -> LoginSession:
        """Answer the current prompt. A rejected answer keeps the step, with ``error`` set."""
        async with session.lock:
            self._notice_cancellation(session)
            if session.status != "input" or session.pending is None:
                raise ValueError(f"this login expects no input now (it is {session.status})")
            try:
                step = await session.pending.process.submit(text)
            except LoginError as e:
                session.error = str(e)
                session.bump()
                return session
            except Exception:
                log.exception("A %s login step failed", session.network)
                await self._finish(session, "failed", "internal error")
                return session
            await self._apply(session, step)
        return session

    async def cancel(self, session: LoginSession) -> None:
        self._notice_cancellation(session)
        if not session.finished:
            await self._finish(session, "cancelled", None)

    async def wait(self, session: LoginSession, since_version: int, timeout: float) -> None:
        """Wait until the session changes after ``since_version``, or ``timeout`` passes."""
        if session.version != since_version or timeout <= 0:
            return
        try:
            await asyncio.wait_for(session.changed.wait(), timeout)
        except TimeoutError:
            pass

    async def close(self) -> None:
        for session in list(self._sessions.values()):
            await self.cancel(session)
        self._sessions.clear()

    # ---------------------------------------------------------------------------------

    async def _progress(self, session: LoginSession, step: LoginPrompt | LoginComplete | LoginError) -> None:
        """A step the connector reported by itself."""
        if session.finished:
            return
        if isinstance(step, LoginError):
            await self._finish(session, "failed", str(step))
        else:
            await self._apply(session, step)

    async def _apply(self, session: LoginSession, step: LoginPrompt | LoginComplete) -> None:
        session.error = None
        if isinstance(step, LoginComplete):
            self._release(session)
            login = await self.ctx.logins.add(step.record)
            session.login = login.record
            session.status, session.prompt = "complete", None
            session.touched = time.monotonic()
            session.bump()
            log.info("Login %s on %s completed through the provisioning API",
                     login.login_id, session.network)
            return
        session.prompt = step
        session.status = "input" if step.expects_input else "waiting"
        if session.pending is not None:
            session.pending.secret_input = step.secret
        session.bump()

    async def _finish(self, session: LoginSession, status: str, error: str | None) -> None:
        pending = session.pending
        self._release(session)
        session.status, session.error, session.prompt = status, error, None
        session.touched = time.monotonic()
        session.bump()
        if pending is not None:
            await pending.process.cancel()

    def _release(self, session: LoginSession) -> None:
        """Stop being the user's pending login (if still so)."""
        if session.pending is not None and self.ctx.logins.pending.get(session.owner) is session.pending:
            self.ctx.logins.pending.pop(session.owner, None)
        session.pending = None

    def _notice_cancellation(self, session: LoginSession) -> None:
        """The bot's ``cancel`` or a newer login replaced this one in the core."""
        if session.finished or session.pending is None:
            return
        if self.ctx.logins.pending.get(session.owner) is not session.pending:
            session.pending = None
            session.status, session.prompt, session.error = "cancelled", None, None
            session.bump()

    async def _expire(self) -> None:
        now = time.monotonic()
        for process_id, session in list(self._sessions.items()):
            limit = FINISHED_KEPT if session.finished else IDLE_TIMEOUT
            if now - session.touched > limit:
                del self._sessions[process_id]
                await self.cancel(session)
