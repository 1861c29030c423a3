"""The bridge process: wires the database, the homeserver, the connectors and the handlers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..config import Config, ConfigError, load_dataclass
from ..db import BridgeDatabase
from ..matrix.api import MatrixAPI
from ..matrix.appservice import AppserviceServer
from ..matrix.ids import GhostIDs
from ..networks.registry import connector_class
from ..metrics import TO_MATRIX
from ..registration import load_registration
from ..services import AdminServices
from .commands.handlers import CommandContext, show_login_step
from .commands.parser import ParsedCommand
from .connector import Connector, LoginComplete, LoginError, LoginPrompt, LoginState, NetworkLogin
from .context import BridgeContext
from .events import RemoteEvent, UserInfo
from .ghosts import Ghosts
from .ids import NetworkID, PortalKey, UserID
from .login_status import publish_login_status
from .logins import Logins
from .matrix_inbox import MatrixInbox
from .outgoing import OutgoingHandler
from .remote import RemoteHandler

log = logging.getLogger("bridge")


class Bridge:
    """Implements :class:`~bridge.core.connector.BridgeHost` for the connectors."""

    def __init__(self, config: Config) -> None:
        self.config = config
        registration = load_registration(config)
        self.db = BridgeDatabase(config.database.uri, max_connections=config.database.max_connections)
        self.matrix = MatrixAPI(
            config.homeserver.address,
            config.homeserver.domain,
            registration.as_token,
            config.appservice.bot_username,
        )
        self.ctx = BridgeContext(
            config=config,
            db=self.db,
            matrix=self.matrix,
            ghost_ids=GhostIDs(config.appservice.ghost_prefix, config.homeserver.domain),
        )
        self.connectors = self._create_connectors()
        self.ctx.logins = Logins(self.ctx, self.connectors)
        self.ctx.ghosts = Ghosts(self.ctx)
        self.remote = RemoteHandler(self.ctx)
        self.outgoing = OutgoingHandler(self.ctx)
        self.inbox = MatrixInbox(self.ctx, self.remote, self.outgoing)
        self.server = AppserviceServer(
            registration.hs_token,
            self.inbox.handle_transaction,
            self.db.transactions,
            self._user_exists,
        )
        self._last_states: dict[tuple[NetworkID, str], LoginState] = {}
        self.services = AdminServices(self.ctx)

    def _create_connectors(self) -> dict[NetworkID, Connector]:
        connectors: dict[NetworkID, Connector] = {}
        for name in self.config.enabled_networks:
            raw = self.config.networks[name]
            try:
                cls = connector_class(str(raw.get("connector", name)))
            except KeyError as e:
                raise ConfigError(f"'networks.{name}': {e.args[0]}") from None
            section = {k: v for k, v in raw.items() if k not in ("enabled", "connector")}
            net_config = load_dataclass(cls.config_class, section, f"networks.{name}")
            if hasattr(net_config, "validate"):
                net_config.validate()
            connectors[NetworkID(name)] = cls(net_config, self, NetworkID(name))
        return connectors

    async def _user_exists(self, user_id: str) -> bool:
        ghost = self.ctx.ghost_ids.parse(user_id)
        return ghost is not None and ghost.network in self.connectors

    async def start(self) -> None:
        await self.db.start()
        await self.matrix.start()
        await self.server.start(self.config.appservice.hostname, self.config.appservice.port)
        await self._prepare_bot()
        for connector in self.connectors.values():
            await connector.start()
        await self.ctx.logins.restore_all()
        await self.services.start()
        log.info("Bridge started with networks: %s", ", ".join(self.connectors) or "none")

    async def _prepare_bot(self) -> None:
        for attempt in range(30):
            try:
                await self.matrix.whoami_ok()
                break
            except Exception as e:  # the homeserver may still be starting
                if attempt == 29:
                    raise ConfigError(
                        f"can't reach the homeserver at {self.config.homeserver.address} "
                        f"with the bridge's as_token: {e}"
                    ) from e
                await asyncio.sleep(1)
        await self.matrix.set_profile(
            self.matrix.bot_mxid, name=self.config.appservice.bot_displayname
        )

    async def stop(self, drain_timeout: float = 30) -> None:
        await self.services.stop()
        await self.server.stop()
        if not await self.ctx.queues.drain(drain_timeout):
            log.warning("Stopped with work still queued; it will be redelivered")
        await self.ctx.logins.stop_all()
        for connector in self.connectors.values():
            await connector.stop()
        await self.matrix.stop()
        await self.db.stop()

    # BridgeHost --------------------------------------------------------------------------

    def queue_remote_event(self, login: NetworkLogin, event: RemoteEvent) -> asyncio.Future[None]:
        key = PortalKey(login.record.network, event.chat_id)
        job = self.ctx.metrics.timed(key.network, TO_MATRIX, lambda: self.remote.handle(login, event))
        return self.ctx.queues.submit(key, job)

    async def set_login_state(
        self, login: NetworkLogin, state: LoginState, error: str | None = None
    ) -> None:
        record = login.record
        previous = record.state
        record.state, record.error = state, error
        await self.db.logins.set_state(record.network, record.login_id, state, error)
        if previous == state:
            return
        log.info("Login %s on %s is now %s%s", record.login_id, record.network, state.value,
                 f" ({error})" if error else "")
        await publish_login_status(self.ctx, record)
        if state in (LoginState.BAD_CREDENTIALS, LoginState.LOGGED_OUT):
            name = self.connectors[record.network].display_name
            await self.inbox.tell_user(
                record.owner,
                f"Your {name} login {record.remote_name or record.login_id} was logged out"
                f"{': ' + error if error else ''}. Log in again with "
                f"'{self.config.bridge.command_prefix} login {record.network}'.",
            )

    async def save_login(self, login: NetworkLogin) -> None:
        await self.db.logins.put(login.record)

    async def update_ghost(self, network: NetworkID, info: UserInfo) -> None:
        await self.ctx.ghosts.apply(network, info)

    async def login_progress(
        self, owner: UserID, step: LoginPrompt | LoginComplete | LoginError
    ) -> None:
        pending = self.ctx.logins.pending.get(owner)
        if pending is None:
            return  # cancelled meanwhile
        if pending.on_progress is not None:  # driven by the provisioning API, not the bot
            await pending.on_progress(step)
            return
        ctx = CommandContext(
            bridge=self.ctx,
            remote=self.remote,
            sender=owner,
            room_id=pending.room_id,
            is_management=True,
            command=ParsedCommand("login", (), ""),
        )
        if isinstance(step, LoginError):
            self.ctx.logins.pending.pop(owner, None)
            await pending.process.cancel()
            await ctx.reply(f"Login failed: {step}")
            return
        await show_login_step(ctx, step)

    def status(self) -> dict[str, Any]:
        return {
            "networks": list(self.connectors),
            "logins": len(self.ctx.logins.all()),
            "queued": self.ctx.queues.total_depth,
        }
