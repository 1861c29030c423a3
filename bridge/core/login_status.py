"""Each login's state where its owner can see it.

Three places show it: the ``status`` command (and the provisioning API's login list), a
notice when a login is logged out (``Bridge.set_login_state``), and a state event in the
owner's management room that clients and tools can read without parsing notices:

* type ``org.hubbridge.login_status``, state key ``<network>/<login id>``;
* content shaped like mautrix's bridge state (``state_event`` is one of ``CONNECTING``,
  ``CONNECTED``, ``TRANSIENT_DISCONNECT``, ``BAD_CREDENTIALS``, ``LOGGED_OUT``), plus the
  network, the remote account's name, the error and a timestamp.

Sending a state event needs power level 50 in the management room. Element creates
direct chats with every member at 100, so it works there; where the bot lacks the power
the event is left out (the command and the notices still work).
"""

from __future__ import annotations

import logging
from typing import Any

from .connector import LoginRecord, LoginState
from .context import BridgeContext, now_ms
from .ids import UserID

log = logging.getLogger("bridge.core.login_status")

LOGIN_STATUS_EVENT = "org.hubbridge.login_status"

BRIDGE_STATE_NAMES: dict[LoginState, str] = {
    LoginState.CONNECTING: "CONNECTING",
    LoginState.CONNECTED: "CONNECTED",
    LoginState.TRANSIENT_ERROR: "TRANSIENT_DISCONNECT",
    LoginState.BAD_CREDENTIALS: "BAD_CREDENTIALS",
    LoginState.LOGGED_OUT: "LOGGED_OUT",
}


def describe_state(state: LoginState, error: str | None) -> str:
    """The state in words, as the status command shows it."""
    if state == LoginState.CONNECTED:
        return "connected"
    if state == LoginState.CONNECTING:
        return "connecting"
    if state == LoginState.TRANSIENT_ERROR:
        return f"error: {error or 'unknown'} (retrying)"
    if state == LoginState.BAD_CREDENTIALS:
        return f"logged out by the network: {error or 'the session ended'} (log in again)"
    return "logged out" + (f": {error}" if error else "")


async def user_logins(ctx: BridgeContext, user_id: str) -> list[LoginRecord]:
    """The user's logins: the running ones, then stored ones that are not running
    (logged out, or on a network that is switched off)."""
    running = [login.record for login in ctx.logins.of_user(user_id)]
    seen = {(r.network, r.login_id) for r in running}
    stored = [
        r for r in await ctx.db.logins.by_owner(UserID(user_id))
        if (r.network, r.login_id) not in seen
    ]
    return running + stored


def status_content(record: LoginRecord, state: LoginState | None = None) -> dict[str, Any]:
    state = state or record.state
    content: dict[str, Any] = {
        "state_event": BRIDGE_STATE_NAMES[state],
        "network": record.network,
        "remote_id": record.login_id,
        "remote_name": record.remote_name,
        "timestamp": now_ms() // 1000,
    }
    if record.error and state != LoginState.CONNECTED:
        content["error"] = record.error
    return content


async def publish_login_status(
    ctx: BridgeContext, record: LoginRecord, state: LoginState | None = None
) -> None:
    """Put the login's state into its owner's management room (best effort)."""
    room = await ctx.db.users.get_management_room(record.owner)
    if not room:
        return
    try:
        await ctx.matrix.send_state(
            room, LOGIN_STATUS_EVENT, status_content(record, state),
            state_key=f"{record.network}/{record.login_id}",
        )
    except Exception as e:
        # Usually: the user created the room and gave the bot no power to send state.
        log.info("Could not post the login status in %s: %s", room, type(e).__name__)
