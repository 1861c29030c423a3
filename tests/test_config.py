"""Configuration loading, permissions, the registration file and the command line."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bridge import __version__
from bridge.config import Config, ConfigError, load_config
from bridge.core.ids import GhostKey, NetworkID, RemoteUserID
from bridge.matrix.ids import GhostIDs

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "config.example.yaml"
DOMAIN = "test.local"


def example_data() -> dict:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["homeserver"]["domain"] = DOMAIN
    return data


def write_config(tmp_path: Path, data: dict | str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, data: dict | str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path, data))
    return str(info.value)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m bridge ARGS`` with this tree's ``bridge`` package."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- loading --------------------------------------------------------------------------------


def test_the_example_config_is_rejected_only_for_its_example_domain(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'homeserver\.domain'"):
        load_config(EXAMPLE)
    config = load_config(write_config(tmp_path, example_data()))
    assert config.homeserver.domain == DOMAIN
    assert config.appservice.port == 29400
    assert config.bridge.command_prefix == "!bridge"
    assert config.bridge.permissions["@admin:example.com"] == "admin"
    assert config.enabled_networks == ["loopback"]
    assert config.networks["loopback"]["address"] == "http://127.0.0.1:29410"
    assert config.path == tmp_path / "config.yaml"


def test_an_unknown_top_level_key_is_an_error_naming_it(tmp_path: Path) -> None:
    data = example_data()
    data["homserver"] = {"domain": "typo.example"}
    message = load_error(tmp_path, data)
    assert "'homserver'" in message and "unknown key" in message


def test_an_unknown_nested_key_is_an_error_naming_its_dotted_path(tmp_path: Path) -> None:
    data = example_data()
    data["bridge"]["comand_prefix"] = "!b"
    message = load_error(tmp_path, data)
    assert "'bridge.comand_prefix'" in message
    assert "command_prefix" in message  # the known keys help to spot the typo


@pytest.mark.parametrize(
    ("section", "key", "value", "named"),
    [
        ("appservice", "port", "not a number", "appservice.port"),
        ("appservice", "port", True, "appservice.port"),
        ("appservice", "port", 29400.5, "appservice.port"),
        ("bridge", "bridge_notices", "yes", "bridge.bridge_notices"),
        ("bridge", "permissions", ["@a:b"], "bridge.permissions"),
        ("bridge", "command_prefix", {"a": 1}, "bridge.command_prefix"),
        ("database", "max_connections", None, "database.max_connections"),
        ("logging", "modules", "bridge: DEBUG", "logging.modules"),
        ("homeserver", None, ["a", "list"], "homeserver"),
    ],
)
def test_a_value_of_the_wrong_type_is_an_error_naming_the_key(
    tmp_path: Path, section: str, key: str | None, value: object, named: str
) -> None:
    data = example_data()
    if key is None:
        data[section] = value
    else:
        data[section][key] = value
    assert named in load_error(tmp_path, data)


def test_invalid_yaml_is_an_error_naming_the_line(tmp_path: Path) -> None:
    text = "homeserver:\n    domain: test.local\nbridge:\n    permissions: [unclosed\n    x: 1\n"
    message = load_error(tmp_path, text)
    assert "invalid YAML" in message
    assert re.search(r"line [45]\b", message), message
    assert "config.yaml" in message


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="can't read"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("level", ["superuser", "none", "Admin", ""])
def test_permission_levels_are_validated(tmp_path: Path, level: str) -> None:
    data = example_data()
    data["bridge"]["permissions"] = {"*": "relay", "@bob:test.local": level}
    message = load_error(tmp_path, data)
    assert "'bridge.permissions.@bob:test.local'" in message


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("appservice", "bot_username", "Hub Bot"),
        ("appservice", "ghost_prefix", "hub:"),
        ("logging", "level", "LOUD"),
        ("database", "uri", "mysql://x"),
    ],
)
def test_invalid_values_are_errors_naming_the_key(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    data = example_data()
    data[section][key] = value
    assert f"'{section}.{key}'" in load_error(tmp_path, data)


# --- permissions ----------------------------------------------------------------------------


def config_with_permissions(permissions: dict[str, str]) -> Config:
    config = Config()
    config.bridge.permissions = permissions
    return config


def test_permission_of_prefers_the_exact_id_then_the_server_then_the_wildcard() -> None:
    config = config_with_permissions(
        {"*": "relay", "test.local": "user", "@admin:test.local": "admin"}
    )
    assert config.permission_of("@admin:test.local") == "admin"
    assert config.permission_of("@someone:test.local") == "user"
    assert config.permission_of("@someone:other.example") == "relay"
    # A server name matches only as the whole server part, not as a suffix.
    assert config.permission_of("@someone:eviltest.local") == "relay"
    assert config.permission_of("@someone:test.local.evil") == "relay"


def test_an_unlisted_user_has_no_permission_without_a_wildcard() -> None:
    config = config_with_permissions({"test.local": "user", "@admin:test.local": "admin"})
    assert config.permission_of("@someone:other.example") == "none"
    assert config.permission_of("not a user id") == "none"
    assert config.permission_of("@admin:test.local") == "admin"


# --- registration through the command line -------------------------------------------------


def registration_config(tmp_path: Path) -> Path:
    data = example_data()
    data["networks"] = {
        "loopback": {"enabled": True, "address": "http://127.0.0.1:29410"},
        "othernet": {},
        "offnet": {"enabled": False},
    }
    return write_config(tmp_path, data)


def generate(tmp_path: Path, config: Path) -> dict:
    result = run_cli("-c", str(config), "generate-registration", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "registration.yaml"
    assert str(path) in result.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the tokens
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def synapse_matches(regex: str, user_id: str) -> bool:
    """How Synapse tests a user against a namespace: ``re.match`` (anchored at the start)."""
    return re.compile(regex).match(user_id) is not None


def test_generate_registration_writes_random_tokens_and_exclusive_namespaces(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    reg = generate(tmp_path / "one", registration_config(tmp_path / "one"))
    other = generate(tmp_path / "two", registration_config(tmp_path / "two"))

    assert reg["id"] == "hubbridge" and reg["sender_localpart"] == "hubbridge"
    assert reg["url"] == "http://127.0.0.1:29400"
    for token in ("as_token", "hs_token"):
        assert len(reg[token]) >= 32
        assert reg[token] != other[token]
    assert reg["as_token"] != reg["hs_token"]

    users = reg["namespaces"]["users"]
    assert all(ns["exclusive"] is True for ns in users)
    assert len(users) == 3  # the bot, loopback and othernet; offnet is disabled
    bot_regex = users[0]["regex"]
    assert re.fullmatch(bot_regex, f"@hubbridge:{DOMAIN}")
    for wrong in (f"@hubbridge2:{DOMAIN}", "@hubbridge:other.example", f"@alice:{DOMAIN}"):
        assert not synapse_matches(bot_regex, wrong), wrong

    ghosts = GhostIDs("hub_", DOMAIN)
    by_network = {name: ns["regex"] for name, ns in zip(["loopback", "othernet"], users[1:])}
    remote_ids = ["alice", "Bob Smith", "ünï/cødé 🐇", "user@host", "_x_", "12345"]
    for network, regex in by_network.items():
        for remote in remote_ids:
            mxid = ghosts.mxid(GhostKey(NetworkID(network), RemoteUserID(remote)))
            assert re.fullmatch(regex, mxid), (regex, mxid)
    not_ghosts = [
        f"@alice:{DOMAIN}",
        f"@hubbridge:{DOMAIN}",
        f"@hub_offnet_alice:{DOMAIN}",
        f"@hub_loopbackx_alice:{DOMAIN}",
        "@hub_loopback_alice:other.example",
    ]
    for regex in by_network.values():
        for user in not_ghosts:
            assert not synapse_matches(regex, user), (regex, user)
    other_ghost = ghosts.mxid(GhostKey(NetworkID("othernet"), RemoteUserID("alice")))
    assert not synapse_matches(by_network["loopback"], other_ghost)


def test_registration_namespaces_do_not_claim_users_of_a_longer_server_name(tmp_path: Path) -> None:
    reg = generate(tmp_path, registration_config(tmp_path))
    users = [ns["regex"] for ns in reg["namespaces"]["users"]]
    assert not synapse_matches(users[0], f"@hubbridge:{DOMAIN}.evil.example")
    assert not synapse_matches(users[1], f"@hub_loopback_x:{DOMAIN}.evil.example")


def test_generate_registration_again_keeps_the_tokens(tmp_path: Path) -> None:
    config = registration_config(tmp_path)
    first = generate(tmp_path, config)
    second = generate(tmp_path, config)
    assert (second["as_token"], second["hs_token"]) == (first["as_token"], first["hs_token"])
    assert second == first


def test_the_cli_exits_non_zero_naming_the_key_of_a_bad_config(tmp_path: Path) -> None:
    data = example_data()
    data["appservice"]["prot"] = 1
    config = write_config(tmp_path, data)
    for command in ("generate-registration", "check-config"):
        result = run_cli("-c", str(config), command, cwd=tmp_path)
        assert result.returncode != 0
        assert "'appservice.prot'" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "registration.yaml").exists()


def test_the_cli_check_config_accepts_a_good_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, example_data())
    result = run_cli("-c", str(config), "check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_the_cli_prints_its_version(tmp_path: Path) -> None:
    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"hub-bridge {__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", __version__)
