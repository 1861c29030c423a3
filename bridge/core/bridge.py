"""The bridge process: wires the database, the homeserver, the connectors and the handlers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..config import Config, ConfigError, load_dataclass
from ..db import BridgeDatabase, is_transient_db_error
from ..logs import silence_leaky_libraries
from ..matrix.api import MatrixAPI, MatrixError, is_transient
from ..matrix.appservice import AppserviceServer
from ..matrix.crypto import BridgeCrypto
from ..matrix.ids import GhostIDs
from ..networks.registry import connector_class
from ..metrics import TO_MATRIX
from ..registration import load_registration
from ..services import AdminServices
from .commands.handlers import CommandContext, show_login_step
from .commands.parser import ParsedCommand
from . import housekeeping
from .connector import Connector, LoginComplete, LoginError, LoginPrompt, LoginState, NetworkLogin
from .context import BridgeContext
from .events import RemoteEvent, UserInfo
from .ghosts import Ghosts
from .hub import HubRelay
from .ids import NetworkID, PortalKey, UserID
from .login_status import publish_login_status
from .logins import Logins
from .matrix_inbox import MatrixInbox
from .outgoing import OutgoingHandler
from .remote import RemoteHandler

log = logging.getLogger("bridge")

MAX_REMOTE_ATTEMPTS = 5
"""How often a remote event may fail (other than the homeserver being away) before the
bridge reports it in the room and moves on."""


class Bridge:
    """Implements :class:`~bridge.core.connector.BridgeHost` for the connectors."""

    def __init__(self, config: Config) -> None:
        self.config = config
        silence_leaky_libraries()
        registration = load_registration(config)
        self.db = BridgeDatabase(config.database.uri, max_connections=config.database.max_connections)
        self.matrix = MatrixAPI(
            config.homeserver.address,
            config.homeserver.domain,
            registration.as_token,
            config.appservice.bot_username,
            double_puppet_token=registration.double_puppet_token,
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
        self.ctx.hub = HubRelay(self.ctx)
        self.remote = RemoteHandler(self.ctx)
        self.outgoing = OutgoingHandler(self.ctx)
        self.inbox = MatrixInbox(self.ctx, self.remote, self.outgoing)
        self.crypto = self._create_crypto(registration.as_token)
        self.server = AppserviceServer(
            registration.hs_token,
            self.inbox.accept_transaction,
            self.db.transactions,
            self._user_exists,
        )
        self._housekeeping: asyncio.Task[None] | None = None
        self._remote_failures: dict[tuple, int] = {}
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

    def _create_crypto(self, as_token: str) -> BridgeCrypto | None:
        if not self.config.encryption.allow:
            return None
        bot = self.matrix.bot_mxid
        crypto = BridgeCrypto(
            self.config.encryption,
            self.matrix,
            self.db.db,
            as_token=as_token,
            is_ours=lambda mxid: mxid == bot or self.ctx.ghost_ids.parse(mxid) is not None,
            device_name=self.config.appservice.bot_displayname,
        )
        crypto.on_decryption_failure = self.ctx.metrics.decryption_failed
        self.matrix.crypto = crypto
        return crypto

    async def _user_exists(self, user_id: str) -> bool:
        ghost = self.ctx.ghost_ids.parse(user_id)
        return ghost is not None and ghost.network in self.connectors

    async def start(self) -> None:
        await self.db.start()
        await self.matrix.start()
        await self._prepare_bot()
        if self.crypto is not None:
            await self.crypto.start(self.inbox.handle_event)
        for connector in self.connectors.values():
            await connector.start()
        await self.ctx.logins.restore_all()
        await self.inbox.start()
        # Listen last: a transaction handled before the logins are back would be refused
        # ("not logged in") instead of waiting for the homeserver's retry.
        await self.server.start(self.config.appservice.hostname, self.config.appservice.port)
        await self.matrix.ask_for_ping(self.config.appservice.id)
        self._housekeeping = asyncio.create_task(housekeeping.run_forever(self.ctx))
        await self.services.start()
        log.info("Bridge started with networks: %s", ", ".join(self.connectors) or "none")

    async def _prepare_bot(self) -> None:
        """Wait for the homeserver (it may be restarting too), then check our token."""
        delay = 1.0
        while True:
            try:
                await self.matrix.whoami_ok()
                break
            except MatrixError as e:
                if not e.retryable:
                    raise ConfigError(
                        f"the homeserver at {self.config.homeserver.address} does not accept the "
                        "bridge's as_token: is registration.yaml in its app_service_config_files?"
                    ) from e
                log.warning(
                    "Homeserver at %s not ready (%s); retrying in %.0f s",
                    self.config.homeserver.address, e.reason, delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)
        await self.matrix.set_profile(
            self.matrix.bot_mxid, name=self.config.appservice.bot_displayname
        )

    async def stop(self, drain_timeout: float = 30) -> None:
        await self.services.stop()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        await self.server.stop()
        await self.inbox.stop(drain_timeout)
        # Stop taking in network events (some networks acknowledge on receipt), finish
        # queued work while the logins can still send, then disconnect and finish what
        # arrived meanwhile. Whatever is left is handled at the next start.
        await self.ctx.logins.stop_receiving_all()
        idle = await self.ctx.queues.wait_idle(drain_timeout)
        await self.ctx.logins.stop_all()
        idle = await self.ctx.queues.wait_idle(5) and idle
        if not idle:
            log.warning("Stopped with work still queued; it will be handled at the next start")
        self.ctx.queues.close()
        for connector in self.connectors.values():
            await connector.stop()
        if self.crypto is not None:
            await self.crypto.stop()
        await self.matrix.stop()
        await self.db.stop()

    # BridgeHost --------------------------------------------------------------------------

    def queue_remote_event(self, login: NetworkLogin, event: RemoteEvent) -> asyncio.Future[None]:
        key = PortalKey(login.record.network, event.chat_id)
        job = self.ctx.metrics.timed(
            key.network, TO_MATRIX, lambda: self._handle_remote(login, key, event)
        )
        return self.ctx.queues.submit(key, job)

    async def _handle_remote(self, login: NetworkLogin, key: PortalKey, event: RemoteEvent) -> None:
        """Handle one remote event; a failure the connector's retry can't fix ends visibly.

        A homeserver that is away raises, so the connector keeps the event and tries
        again. An event Matrix refuses for good, or one that fails again and again, is
        reported in the room instead of blocking the chat forever.
        """
        identity = (key, type(event).__name__, getattr(event, "message_id", None), event.timestamp_ms)
        try:
            await self.remote.handle(login, event)
        except Exception as e:
            if is_transient(e) or is_transient_db_error(e):
                raise  # the homeserver or the database is away: the connector keeps the event
            if isinstance(e, MatrixError):
                await self._give_up(key, event, e.reason)
                return
            failures = self._remote_failures.get(identity, 0) + 1
            # A bug or an odd event: retried a few times, then reported, never a loop.
            self._remote_failures[identity] = failures
            if failures < MAX_REMOTE_ATTEMPTS:
                raise
            log.exception("Giving up on a %s in %s after %d attempts", type(event).__name__, key, failures)
            await self._give_up(key, event, f"internal error ({type(e).__name__})")
        self._remote_failures.pop(identity, None)

    async def _give_up(self, key: PortalKey, event: RemoteEvent, reason: str) -> None:
        portal = await self.db.portals.get(key)
        name = self.connectors[key.network].display_name
        log.warning("Could not bridge a %s from %s: %s", type(event).__name__, key, reason)
        self.ctx.metrics.failed(key.network, TO_MATRIX, reason)
        if portal is not None and portal.room_id:
            try:
                await self.matrix.notice(
                    portal.room_id, f"A {name} message could not be shown here: {reason}."
                )
            except Exception:
                log.exception("Could not report the failure in %s", portal.room_id)

    async def set_login_state(
        self, login: NetworkLogin, state: LoginState, error: str | None = None
    ) -> None:
        record = login.record
        previous = record.state
        record.state, record.error = state, error
        try:
            await self.db.logins.set_state(record.network, record.login_id, state, error)
        except Exception:
            # Reporting a state must never break the connector that reports it (its
            # reconnect loop would die); the state is kept in memory and saved next time.
            log.warning("Could not store the state of login %s", record.login_id, exc_info=True)
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
        status = {
            "networks": list(self.connectors),
            "logins": len(self.ctx.logins.all()),
            "queued": self.ctx.queues.total_depth,
        }
        if self.crypto is not None:
            status["encryption"] = self.crypto.status()
        return status
