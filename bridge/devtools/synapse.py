"""Run a throwaway Synapse homeserver in a directory, for the demo and the tests.

``LocalSynapse`` writes a minimal ``homeserver.yaml`` (client API only on 127.0.0.1,
SQLite, no federation listener, no registration, rate limits out of the way,
the experimental flags that appservice-mode encryption needs), launches
``python -m synapse.app.homeserver`` as a child process and waits for ``/health``.

Measured on the 2-core development machine (Synapse 1.163): ``start()`` takes about
1.25 s on a fresh directory (schema creation included) and about 1.1 s on a restart;
``stop()`` takes a few tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import aiohttp
import yaml

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 40

# Every rate limiter Synapse 1.16x reads (synapse/config/ratelimiting.py). Tests and
# the demo act fast from a handful of users; a 429 there is never what we test.
_UNLIMITED = {"per_second": 1000, "burst_count": 1000}
_RATE_LIMITS: dict[str, Any] = {
    "rc_login": {key: _UNLIMITED for key in ("address", "account", "failed_attempts")},
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_invites": {key: _UNLIMITED for key in ("per_room", "per_user", "per_issuer")},
    "rc_presence": {"per_user": _UNLIMITED},
    **dict.fromkeys(
        (
            "rc_message", "rc_registration", "rc_registration_token_validity",
            "rc_admin_redaction", "rc_joins_per_room", "rc_key_requests",
            "rc_3pid_validation", "rc_third_party_invite", "rc_media_create",
            "rc_delayed_event_mgmt", "rc_room_creation", "rc_reports",
            "rc_user_directory", "rc_profile",
        ),
        _UNLIMITED,
    ),
}

_SECRET_KEYS = ("registration_shared_secret", "macaroon_secret_key", "form_secret")


class SynapseError(RuntimeError):
    """Synapse failed to start, or an admin request to it failed."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Twisted listens with SO_REUSEADDR, so a port in TIME_WAIT is still usable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class LocalSynapse:
    """One Synapse process serving the client API on ``127.0.0.1:port``.

    The directory keeps the database, media, keys and config, so ``restart()`` (or a
    new ``LocalSynapse`` on the same directory) keeps users and rooms.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        server_name: str = "localhost",
        port: int | None = None,
        registrations: list[Path] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.config_path = self.workdir / "homeserver.yaml"
        """The generated ``homeserver.yaml``."""
        self.log_path = self.workdir / "synapse.log"
        """Synapse's own log plus its stdout/stderr."""
        self._pid_path = self.workdir / "homeserver.pid"
        self._signing_key_path = self.workdir / f"{server_name}.signing.key"
        self._server_name = server_name
        self.registrations = [Path(p).resolve() for p in registrations or []]
        self._python = python
        self._proc: asyncio.subprocess.Process | None = None
        self._existing = self._load_existing_config()
        self._auto_port = port is None
        if port is None:
            # Reuse the port of an earlier run when we can: bridge configs point at it.
            old_port = self._existing_port()
            port = old_port if old_port and _port_is_free(old_port) else _free_port()
        self._port = port

    # -- properties ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the client API, e.g. ``http://127.0.0.1:8008``."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        """TCP port of the client listener."""
        return self._port

    @property
    def server_name(self) -> str:
        """The homeserver's server name (the part after ``:`` in user ids)."""
        return self._server_name

    @property
    def running(self) -> bool:
        """Whether the Synapse process is alive."""
        return self._proc is not None and self._proc.returncode is None

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Write the config if needed, launch Synapse and wait until it is healthy."""
        if self.running:
            return
        started = time.monotonic()
        await asyncio.to_thread(self._prepare)
        with self.log_path.open("ab") as log_file:
            # The child keeps its own copy of the descriptor; ours can close at once.
            proc = self._proc = await asyncio.create_subprocess_exec(
                *(self._python, "-m", "synapse.app.homeserver", "-c", str(self.config_path)),
                cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
            )
        # Synapse writes pid_file only when daemonizing; we keep it ourselves so a
        # later run can stop a Synapse orphaned by a crashed one.
        await asyncio.to_thread(self._pid_path.write_text, str(proc.pid))
        try:
            await self._wait_healthy()
        except BaseException:
            await self.stop()
            raise
        log.info("Synapse up at %s in %.1f s", self.url, time.monotonic() - started)

    async def stop(self) -> None:
        """Stop Synapse: SIGTERM, then SIGKILL if it hasn't exited after 10 s."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            log.warning("Synapse ignored SIGTERM for %.0f s, killing it", STOP_TIMEOUT)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        self._pid_path.unlink(missing_ok=True)

    async def restart(self) -> None:
        """Stop and start again on the same directory and port."""
        await self.stop()
        await self.start()

    async def _wait_healthy(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                if self._proc.returncode is not None:
                    raise SynapseError(
                        f"Synapse exited with code {self._proc.returncode} while "
                        f"starting; last log lines:\n{await self._log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{self.url}/health") as resp:
                        if resp.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise SynapseError(
                        f"Synapse not healthy after {START_TIMEOUT:.0f} s; "
                        f"last log lines:\n{await self._log_tail()}"
                    )
                await asyncio.sleep(0.1)

    async def _log_tail(self) -> str:
        def tail() -> str:
            try:
                with self.log_path.open(encoding="utf-8", errors="replace") as f:
                    return "".join(deque(f, maxlen=LOG_TAIL_LINES))
            except FileNotFoundError:
                return "(no log file)"

        return await asyncio.to_thread(tail)

    # -- configuration ------------------------------------------------------------

    def _load_existing_config(self) -> dict[str, Any]:
        try:
            loaded = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, yaml.YAMLError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _existing_port(self) -> int | None:
        try:
            return int(self._existing["listeners"][0]["port"])
        except (KeyError, IndexError, TypeError, ValueError):
            return None

    def _prepare(self) -> None:
        """Create the directory, signing key, log config and ``homeserver.yaml``.

        The config is rebuilt from the current settings but keeps the secrets of an
        existing file, and is only rewritten when its content changes (e.g. when
        the registrations or the port changed), so a restart keeps everything.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "media_store").mkdir(exist_ok=True)
        if self._stop_leftover() and self._auto_port:
            # The leftover held our old port; take it back now that it is free.
            old_port = self._existing_port()
            self._port = old_port if old_port and _port_is_free(old_port) else self._port
        self._write_signing_key()
        log_config = self.workdir / "log_config.yaml"
        _write_if_changed(log_config, _dump_yaml(_log_config(self.log_path)))

        existing = self._load_existing_config()
        secret_values = {
            key: existing.get(key) or secrets.token_urlsafe(32) for key in _SECRET_KEYS
        }
        config: dict[str, Any] = {
            "server_name": self._server_name,
            "public_baseurl": self.url + "/",
            "pid_file": str(self._pid_path),
            "listeners": [
                {
                    "port": self._port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    # No federation resource: this homeserver never federates.
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(self.workdir / "homeserver.db")},
            },
            "log_config": str(log_config),
            "media_store_path": str(self.workdir / "media_store"),
            "signing_key_path": str(self._signing_key_path),
            **secret_values,
            "enable_registration": False,
            "report_stats": False,
            "enable_metrics": False,
            "app_service_config_files": [str(p) for p in self.registrations],
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "url_preview_enabled": False,
            "presence": {"enabled": False},
            "max_upload_size": "50M",
            **_RATE_LIMITS,
            "experimental_features": {
                # Appservice-mode encryption: to-device events and device-list /
                # one-time-key counts pushed to the appservice in transactions.
                "msc2409_to_device_messages_enabled": True,
                "msc3202_transaction_extensions": True,
            },
        }
        header = "# Generated by bridge.devtools.synapse.LocalSynapse; edits are overwritten.\n"
        _write_if_changed(self.config_path, header + _dump_yaml(config))
        self._existing = config

    def _stop_leftover(self) -> bool:
        """Stop a Synapse still running on this directory from an earlier, crashed run."""
        try:
            pid = int(self._pid_path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return False
        if str(self.config_path).encode() not in cmdline:
            return False  # the pid was reused by an unrelated process
        log.warning("Stopping leftover Synapse (pid %d) on %s", pid, self.workdir)
        for sig, grace in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not Path(f"/proc/{pid}").exists():
                    return True
                time.sleep(0.05)  # runs in a worker thread (see start())
        return True

    def _write_signing_key(self) -> None:
        if self._signing_key_path.exists():
            return
        # Synapse depends on signedjson; importing here keeps the bridge free of it.
        from signedjson.key import generate_signing_key, write_signing_keys

        key = generate_signing_key("a_" + secrets.token_hex(2))
        with self._signing_key_path.open("w", encoding="utf-8") as f:
            write_signing_keys(f, [key])

    # -- users --------------------------------------------------------------------

    async def register_user(
        self, localpart: str, password: str = "password", admin: bool = False
    ) -> tuple[str, str]:
        """Create a user with the shared-secret admin API; return (user_id, access_token).

        If the user already exists, log in with ``password`` instead (a new device).
        """
        secret = str(self._existing["registration_shared_secret"])
        api = f"{self.url}/_synapse/admin/v1/register"
        async with aiohttp.ClientSession() as http:
            async with http.get(api) as resp:
                nonce = (await _json_or_raise(resp))["nonce"]
            mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
            for part in (nonce, localpart, password):
                mac.update(part.encode())
                mac.update(b"\x00")
            mac.update(b"admin" if admin else b"notadmin")
            body = {
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            }
            async with http.post(api, json=body) as resp:
                data = await resp.json(content_type=None)
                if resp.status == 200:
                    return str(data["user_id"]), str(data["access_token"])
                if data.get("errcode") != "M_USER_IN_USE":
                    raise SynapseError(f"register {localpart}: {resp.status} {data}")
            return await self._login(http, localpart, password)

    async def login(self, localpart: str, password: str = "password") -> tuple[str, str]:
        """Log in with a password; return (user_id, access_token)."""
        async with aiohttp.ClientSession() as http:
            return await self._login(http, localpart, password)

    async def _login(
        self, http: aiohttp.ClientSession, localpart: str, password: str
    ) -> tuple[str, str]:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": password,
        }
        async with http.post(f"{self.url}/_matrix/client/v3/login", json=body) as resp:
            data = await _json_or_raise(resp)
        return str(data["user_id"]), str(data["access_token"])


async def _json_or_raise(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    data = await resp.json(content_type=None)
    if resp.status != 200:
        raise SynapseError(f"{resp.method} {resp.url.path}: {resp.status} {data}")
    return dict(data)


class _NoAliasDumper(yaml.SafeDumper):
    """Spell shared sub-dicts out instead of writing ``&id001`` anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _log_config(log_path: Path) -> dict[str, Any]:
    # INFO and up into synapse.log only: nothing on the console.
    return {
        "version": 1,
        "formatters": {
            "precise": {
                "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s"
                " - %(request)s - %(message)s"
            }
        },
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "precise",
                "filename": str(log_path),
                "encoding": "utf8",
            }
        },
        "loggers": {"synapse.storage.SQL": {"level": "INFO"}},
        "root": {"level": "INFO", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


def _dump_yaml(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False)


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except FileNotFoundError:
        pass
    path.write_text(text, encoding="utf-8")
