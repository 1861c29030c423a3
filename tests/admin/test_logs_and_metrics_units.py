"""Pure parts of the admin features: log lines, failure reasons, config checks."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
import yaml

from bridge.config import Config, ConfigError, LoggingConfig, load_dataclass, parse_listen, validate
from bridge.core.connector import SendError, Unsupported
from bridge.core.ids import NetworkID, PortalKey, RemoteChatID
from bridge.core.outgoing import DeliveryError
from bridge.core.queue import KeyedQueues
from bridge.logs import ContextFilter, JSONFormatter, TextFormatter, log_context, mask_secrets, setup_logging
from bridge.matrix.api import MatrixError
from bridge.metrics import FAILURE_REASONS, BridgeMetrics, failure_reason


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_a_traceback_stays_on_the_line_of_its_event() -> None:
    logger, stream = capture(TextFormatter())
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logger.exception("Handling failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "Handling failed | Traceback (most recent call last):" in lines[0]
    assert "ValueError: bad | thing" in lines[0]


async def test_lines_name_the_portal_and_network_of_the_queue_they_run_in() -> None:
    logger, stream = capture(TextFormatter())
    queues = KeyedQueues()
    key = PortalKey(NetworkID("loopback"), RemoteChatID("c42"))

    async def job() -> None:
        logger.info("Bridged a message")

    with log_context(network="loopback", login="alice"):
        await queues.submit(key, job)
    logger.info("Outside any portal")
    first, second = stream.getvalue().splitlines()
    assert "[network=loopback login=alice portal=loopback:c42]: Bridged a message" in first
    assert second.endswith("test.logs." + logger.name.rsplit(".", 1)[1] + ": Outside any portal")


async def test_json_lines_carry_the_context_as_fields() -> None:
    logger, stream = capture(JSONFormatter())
    with log_context(network="loopback", portal="loopback:c1"):
        logger.warning("Not delivered:\n%s", "rate limited")
    (line,) = stream.getvalue().splitlines()
    data = json.loads(line)
    assert data["message"] == "Not delivered:\nrate limited"
    assert data["network"] == "loopback" and data["portal"] == "loopback:c1"
    assert data["level"] == "WARNING"


@pytest.mark.parametrize(
    "line, secret",
    [
        ("PUT /transactions/1?access_token=abcdef123", "abcdef123"),
        ('{"as_token": "s3cr3t-as"}', "s3cr3t-as"),
        ("Authorization: Bearer eyJhbGciOi.xyz", "eyJhbGciOi.xyz"),
        ("shared_secret=0123456789abcdef", "0123456789abcdef"),
        ("password: hunter2", "hunter2"),
        ("login with token=tok-123", "tok-123"),
    ],
)
def test_credentials_are_masked(line: str, secret: str) -> None:
    masked = mask_secrets(line)
    assert secret not in masked and "<redacted>" in masked


def test_levels_per_module_come_from_the_config() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    touched = ("bridge.networks.loopback", "bridge.matrix.api", "mau")
    try:
        setup_logging(LoggingConfig(level="WARNING", modules={"bridge.networks.loopback": "DEBUG"}, format="json"))
        assert root.level == logging.WARNING
        assert logging.getLogger("bridge.networks.loopback").level == logging.DEBUG
        assert isinstance(root.handlers[0].formatter, JSONFormatter)

        # DEBUG everywhere still leaves out the request bodies (message text) of the
        # Matrix API, unless that module is asked for by name.
        setup_logging(LoggingConfig(level="DEBUG"))
        assert not logging.getLogger("bridge.matrix.api.api.bot").isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("mau.as").isEnabledFor(logging.DEBUG)
        assert logging.getLogger("bridge.core.outgoing").isEnabledFor(logging.DEBUG)
        setup_logging(LoggingConfig(level="INFO", modules={"bridge.matrix.api": "DEBUG"}))
        assert logging.getLogger("bridge.matrix.api.api.bot").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        for name in touched:
            logging.getLogger(name).setLevel(logging.NOTSET)


def test_failures_sort_into_a_fixed_set_of_reasons() -> None:
    def delivery(reason: str, cause: BaseException | None = None) -> DeliveryError:
        error = DeliveryError(reason)
        error.__cause__ = cause
        return error

    cases = {
        "not_logged_in": delivery("you are not logged in to Loopback: send '!bridge login loopback'"),
        "no_permission": delivery("you don't have permission to use this bridge"),
        "too_big": delivery("the file is too big (60 MiB; the limit is 50 MiB)"),
        "network_refused": delivery("not a member", SendError("not a member", permanent=True)),
        "rate_limited": delivery("rate limited", SendError("rate limited", retry_after=2)),
        "unsupported": delivery("the network doesn't support edits", Unsupported("edits")),
        "homeserver": MatrixError("the homeserver failed: M_UNKNOWN"),
        "internal": KeyError("boom"),
        "refused": delivery("something nobody planned for"),
    }
    for expected, error in cases.items():
        assert failure_reason(error) == expected, error
        assert expected in FAILURE_REASONS


async def test_a_timed_job_counts_its_latency_and_its_failure() -> None:
    metrics = BridgeMetrics()

    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await metrics.timed("loopback", "to_matrix", fails)()
    registry = metrics.registry
    labels = {"network": "loopback", "direction": "to_matrix"}
    assert registry.get_sample_value("hubbridge_event_handling_seconds_count", labels) == 1
    assert registry.get_sample_value("hubbridge_event_handling_seconds_sum", labels) >= 0.01
    assert registry.get_sample_value("hubbridge_failures_total", {**labels, "reason": "internal"}) == 1


def config_with(**sections) -> Config:
    data = yaml.safe_load(open("config.example.yaml", encoding="utf-8"))
    data["homeserver"]["domain"] = "my.server"
    data.update(sections)
    config = load_dataclass(Config, data, "")
    validate(config)
    return config


def test_metrics_off_localhost_need_a_token() -> None:
    assert config_with(metrics={"enabled": True, "listen": "127.0.0.1:9100"}).metrics.enabled
    assert config_with(metrics={"enabled": True, "listen": "[::1]:9100"}).metrics.enabled
    with pytest.raises(ConfigError, match="metrics.token"):
        config_with(metrics={"enabled": True, "listen": "0.0.0.0:9100"})
    assert config_with(metrics={"enabled": True, "listen": "0.0.0.0:9100", "token": "t" * 20}).metrics.token
    with pytest.raises(ConfigError, match="host:port"):
        config_with(metrics={"enabled": True, "listen": "9100"})


@pytest.mark.parametrize("secret", ["", "generate", "short-secret", "changeme"])
def test_provisioning_refuses_an_empty_example_or_short_secret(secret: str) -> None:
    with pytest.raises(ConfigError, match="shared_secret"):
        config_with(provisioning={"enabled": True, "listen": "127.0.0.1:29401", "shared_secret": secret})
    # Switched off, nothing is asked of it.
    config_with(provisioning={"enabled": False, "shared_secret": secret})


def test_listen_addresses_parse_with_ipv6() -> None:
    assert parse_listen("127.0.0.1:9100", "k") == ("127.0.0.1", 9100)
    assert parse_listen("[::1]:29401", "k") == ("::1", 29401)
    for bad in ("localhost", ":9100", "host:port", "host:70000"):
        with pytest.raises(ConfigError):
            parse_listen(bad, "k")
