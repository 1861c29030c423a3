"""Connectors and the logins they hold; interactive login processes in progress."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..logs import log_context

from .connector import (
    Connector,
    LoginComplete,
    LoginError,
    LoginProcess,
    LoginPrompt,
    LoginRecord,
    LoginState,
    NetworkLogin,
)
from .context import BridgeContext, now_ms
from .ids import LoginID, NetworkID, UserID
from .login_status import publish_login_status

log = logging.getLogger("bridge.core.logins")


@dataclass
class PendingLogin:
    network: NetworkID
    process: LoginProcess
    room_id: str
    secret_input: bool = False
    """The current prompt asks for a password or code: the answer is redacted after use."""
    on_progress: Callable[[LoginPrompt | LoginComplete | LoginError], Awaitable[None]] | None = None
    """Where steps the connector reports by itself go, when not to the bot's room."""


class Logins:
    def __init__(self, ctx: BridgeContext, connectors: dict[NetworkID, Connector]) -> None:
        self.ctx = ctx
        self.connectors = connectors
        self._active: dict[tuple[NetworkID, LoginID], NetworkLogin] = {}
        self.pending: dict[UserID, PendingLogin] = {}

    def connector(self, network: str) -> Connector:
        try:
            return self.connectors[NetworkID(network)]
        except KeyError:
            raise KeyError(f"the network {network!r} is not enabled on this bridge") from None

    def get(self, network: NetworkID, login_id: LoginID) -> NetworkLogin | None:
        return self._active.get((network, login_id))

    def of_user(self, owner: str, network: str | None = None) -> list[NetworkLogin]:
        return [
            login
            for (net, _), login in sorted(self._active.items())
            if login.record.owner == owner and (network is None or net == network)
        ]

    def all(self) -> list[NetworkLogin]:
        return list(self._active.values())

    async def restore_all(self) -> None:
        """Recreate and connect every stored login of an enabled network."""
        for record in await self.ctx.db.logins.all():
            if record.network not in self.connectors:
                log.warning(
                    "Login %s on %s is kept but not started: the network is not enabled",
                    record.login_id, record.network,
                )
                continue
            if record.state == LoginState.LOGGED_OUT:
                continue
            login = self.connectors[record.network].load_login(record)
            self._active[(record.network, record.login_id)] = login
            await self._connect(login)

    async def _connect(self, login: NetworkLogin) -> None:
        try:
            # Tasks the login starts inherit this: their log lines name the login.
            with log_context(network=login.record.network, login=login.login_id):
                await login.connect()
        except Exception as e:
            log.exception("Failed to connect login %s on %s", login.login_id, login.record.network)
            await self.ctx.db.logins.set_state(
                login.record.network, login.login_id, LoginState.TRANSIENT_ERROR, str(e)
            )
            login.record.state, login.record.error = LoginState.TRANSIENT_ERROR, str(e)

    async def add(self, record: LoginRecord) -> NetworkLogin:
        """Store a completed login and connect it, replacing an older one of the same account."""
        key = (record.network, record.login_id)
        if (old := self._active.pop(key, None)) is not None:
            await old.disconnect()
        await self.ctx.db.users.ensure(record.owner, now_ms())
        await self.ctx.db.logins.put(record)
        login = self.connectors[record.network].load_login(record)
        self._active[key] = login
        await self._connect(login)
        return login

    async def logout(self, login: NetworkLogin) -> None:
        try:
            await login.logout()
        finally:
            await login.disconnect()
            self._active.pop((login.record.network, login.login_id), None)
            await self.ctx.db.logins.delete(login.record.network, login.login_id)
            await publish_login_status(self.ctx, login.record, LoginState.LOGGED_OUT)

    async def stop_receiving_all(self) -> None:
        """Ask every login to stop taking events, before the queues are drained."""
        for login in list(self._active.values()):
            try:
                await login.stop_receiving()
            except Exception:
                log.exception("Login %s failed to stop receiving", login.login_id)

    async def stop_all(self) -> None:
        for login in list(self._active.values()):
            try:
                await login.disconnect()
            except Exception:
                log.exception("Failed to disconnect login %s", login.login_id)
        for pending in self.pending.values():
            await pending.process.cancel()
        self.pending.clear()
