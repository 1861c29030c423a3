"""The Telethon client the bridge uses, and how it is built.

:class:`BridgeTelegramClient` adds two things to Telethon's ``TelegramClient``:

* **Checkpoints.** Telethon advances its update state (pts) as soon as it has *read* a
  batch of updates, before the bridge has handled them. Right after each batch is read,
  the state is copied onto the batch's last update (``_bridge_checkpoint``). Updates are
  dispatched in order (``sequential_updates``), so once the core has handled that update
  and everything before it, the copied state is safe to store: a restart resumes from it
  with ``updates.getDifference`` and can lose nothing.
* **Catch-up after a reconnect.** Telethon reconnects by itself after a network failure;
  afterwards it asks for the difference, so updates sent while the link was down arrive.

Both hook into Telethon internals (``_preprocess_updates``, ``_message_box``,
``_handle_auto_reconnect``), and signing up on a configured server uses ``_on_login``;
they exist unchanged from 1.39 to 1.45. The supported range is stated in pyproject.toml,
and tests/telegram/test_telethon_range.py runs the connector's tests on its lowest version
(the normal run covers the newest).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from telethon import TelegramClient, functions
from telethon.tl import types as tl

from .config import TelegramConfig
from .server import apply_server
from .session import BridgeSession

log = logging.getLogger("bridge.networks.telegram.client")

Checkpoint = tuple[dict[str, Any], dict[int, int]]


class BridgeTelegramClient(TelegramClient):
    """A TelegramClient that marks safe update states and catches up after reconnects."""

    def __init__(self, *args: Any, sign_up_allowed: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_reconnect: Callable[[], Any] | None = None
        self.sign_up_allowed = sign_up_allowed
        """Set by :func:`build_client` only for a configured server that allows it."""

    def current_state(self) -> Checkpoint:
        """Telethon's update state right now (account state, channel pts)."""
        account, channels = self._message_box.session_state()
        return dict(account), dict(channels)

    def _preprocess_updates(self, updates, users, chats):  # type: ignore[override]
        result = super()._preprocess_updates(updates, users, chats)
        if inspect.isawaitable(result):  # async since Telethon 1.40

            async def tagged():
                return self._tag_checkpoint(await result)

            return tagged()
        return self._tag_checkpoint(result)

    def _tag_checkpoint(self, updates):
        if updates:
            updates[-1]._bridge_checkpoint = self.current_state()
        return updates

    async def create_account(self, phone: str, phone_code_hash: str, first_name: str, last_name: str) -> Any:
        """``auth.signUp`` after the server said the number has no account; returns the user.

        Telethon's own ``sign_up`` always refuses (third-party apps may not sign up on
        Telegram), so the request is sent here, and only where the config allows it.
        """
        if not self.sign_up_allowed:
            raise PermissionError("sign-up is allowed only on a configured server that allows it")
        result = await self(functions.auth.SignUpRequest(phone, phone_code_hash, first_name, last_name))
        if not isinstance(result, tl.auth.Authorization):
            raise ValueError(f"the server answered the sign-up with {type(result).__name__}")
        # What Telethon does after any login: remember itself and load the update state.
        return await self._on_login(result.user)

    async def _handle_auto_reconnect(self) -> None:
        await super()._handle_auto_reconnect()
        log.info("Reconnected to Telegram; fetching what was missed")
        await self.catch_up()
        if self.on_reconnect is not None:
            self.on_reconnect()


ClientFactory = Callable[[TelegramConfig, BridgeSession], BridgeTelegramClient]


def build_client(
    config: TelegramConfig, session: BridgeSession, *, retry_delay: float = 1.0
) -> BridgeTelegramClient:
    """The production client: Telegram's own servers from the session's data centre, or
    the configured server (its data centre, address, port and public key).

    ``retry_delay`` is Telethon's pause between connection attempts (tests shorten it).
    """
    if config.server is not None:
        apply_server(config.server, session)
    return BridgeTelegramClient(
        session,
        config.api_id,
        config.api_hash,
        device_model=config.device_model,
        app_version="hub-bridge",
        timeout=config.connect_timeout,
        # Updates are dispatched in order, and checkpoints depend on it.
        sequential_updates=True,
        catch_up=True,
        # Flood waits surface as errors: the core waits and retries with the message
        # still queued, instead of Telethon sleeping inside a call nobody can see.
        flood_sleep_threshold=0,
        receive_updates=True,
        retry_delay=retry_delay,
        sign_up_allowed=config.sign_up_allowed,
    )
