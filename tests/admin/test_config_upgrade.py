"""upgrade-config: new keys arrive with their defaults and comments; the admin's lines stay."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.__main__ import main
from bridge.config import Config, load_dataclass
from bridge.config_upgrade import example_config_text, missing_keys, upgrade_text

EXAMPLE = example_config_text()
EXAMPLE_DATA = yaml.safe_load(EXAMPLE)

OLD_CONFIG = """\
# The admin's own notes stay where they are.
homeserver:
  address: http://127.0.0.1:8008   # our synapse
  domain: my.server

# Tokens live in the registration.
appservice:
  port: 29400
  registration: /etc/hub-bridge/registration.yaml

bridge:
  # only our own server may log in
  permissions:
    "my.server": user
    "@boss:my.server": admin
  backfill_limit: 0

logging:
  level: DEBUG
  modules:
    bridge.networks.loopback: WARNING

networks:
  loopback:
    address: http://127.0.0.1:1234
"""


def is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)


def test_missing_keys_arrive_with_their_defaults_and_comments() -> None:
    result = upgrade_text(OLD_CONFIG, EXAMPLE)
    data = yaml.safe_load(result.text)
    # New sections and keys, with the example's values.
    assert data["metrics"] == EXAMPLE_DATA["metrics"]
    assert data["provisioning"] == EXAMPLE_DATA["provisioning"]
    assert data["database"] == EXAMPLE_DATA["database"]
    assert data["bridge"]["max_media_size_mb"] == EXAMPLE_DATA["bridge"]["max_media_size_mb"]
    assert data["logging"]["format"] == "text"
    # ... and the example's comments, right above them.
    assert "# Prometheus metrics at http://<listen>/metrics" in result.text
    assert "  # Attachments bigger than this are not bridged; the sender is told so.\n  max_media_size_mb: 50" in result.text
    # The admin's values and lines are all still there, in order.
    assert data["homeserver"] == {"address": "http://127.0.0.1:8008", "domain": "my.server"}
    assert data["appservice"]["registration"] == "/etc/hub-bridge/registration.yaml"
    assert data["bridge"]["backfill_limit"] == 0
    assert data["logging"]["level"] == "DEBUG"
    assert is_subsequence(OLD_CONFIG.splitlines(), result.text.splitlines())
    # The result is a valid config for the bridge.
    load_dataclass(Config, data, "")


def test_new_lines_follow_the_admins_indentation() -> None:
    result = upgrade_text(OLD_CONFIG, EXAMPLE)
    lines = result.text.splitlines()
    start = lines.index("metrics:")
    assert lines[start + 1] == "  enabled: false"  # two spaces like the admin's file, not four


def test_the_admins_own_entries_get_no_example_entries() -> None:
    data = yaml.safe_load(upgrade_text(OLD_CONFIG, EXAMPLE).text)
    assert data["bridge"]["permissions"] == {"my.server": "user", "@boss:my.server": "admin"}
    assert data["logging"]["modules"] == {"bridge.networks.loopback": "WARNING"}
    # A network the admin has gets its new keys; no example network is switched on.
    assert data["networks"] == {
        "loopback": {"address": "http://127.0.0.1:1234", "enabled": True, "display_name": "Loopback"}
    }
    no_networks = OLD_CONFIG.split("networks:")[0]
    assert "networks" not in yaml.safe_load(upgrade_text(no_networks, EXAMPLE).text)


def test_upgrading_twice_changes_nothing_the_second_time() -> None:
    once = upgrade_text(OLD_CONFIG, EXAMPLE)
    twice = upgrade_text(once.text, EXAMPLE)
    assert once.added and not twice.added
    assert twice.text == once.text
    assert upgrade_text(EXAMPLE, EXAMPLE).added == []


def test_an_empty_section_is_filled_and_a_flow_style_one_is_reported() -> None:
    text = "homeserver:\n  domain: my.server\nmetrics:\nbridge: {command_prefix: '!hub'}\n"
    result = upgrade_text(text, EXAMPLE)
    data = yaml.safe_load(result.text)
    assert data["metrics"] == EXAMPLE_DATA["metrics"]
    assert data["bridge"] == {"command_prefix": "!hub"}
    assert "bridge.max_media_size_mb" in result.skipped


def test_missing_keys_lists_what_the_packaged_example_adds() -> None:
    assert "metrics" in missing_keys("homeserver:\n  domain: my.server\n")
    assert missing_keys(EXAMPLE) == []


def test_upgrade_config_command_writes_a_backup_and_keeps_the_file_mode(tmp_path: Path, capsys) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(OLD_CONFIG, encoding="utf-8")
    path.chmod(0o640)

    assert main(["-c", str(path), "upgrade-config", "--dry-run"]) == 0
    assert path.read_text(encoding="utf-8") == OLD_CONFIG
    assert "+metrics:" in capsys.readouterr().out

    assert main(["-c", str(path), "upgrade-config"]) == 0
    out = capsys.readouterr().out
    assert "Added" in out and "metrics" in out
    (backup,) = tmp_path.glob("config.yaml.*.bak")
    assert backup.read_text(encoding="utf-8") == OLD_CONFIG
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["metrics"]["enabled"] is False

    assert main(["-c", str(path), "upgrade-config"]) == 0
    assert "already has every key" in capsys.readouterr().out
    assert len(list(tmp_path.glob("config.yaml.*.bak"))) == 1


def test_a_broken_config_is_left_alone(tmp_path: Path, capsys) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("homeserver: [unclosed\n", encoding="utf-8")
    assert main(["-c", str(path), "upgrade-config"]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == "homeserver: [unclosed\n"
    assert not list(tmp_path.glob("*.bak"))


# Property: any subset of the example, written in any indentation and with the admin's
# own values, upgrades to the example's keys with the admin's values kept.


def _leaf_paths(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(data, dict) and prefix not in {("bridge", "permissions"), ("logging", "modules")} and data:
        return [p for k, v in data.items() for p in _leaf_paths(v, (*prefix, k))]
    return [prefix]


LEAVES = _leaf_paths(EXAMPLE_DATA)


def _subset(paths: list[tuple[str, ...]], values: dict[tuple[str, ...], Any]) -> dict:
    out: dict = {}
    for path in paths:
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        source: Any = EXAMPLE_DATA
        for key in path:
            source = source[key]
        node[path[-1]] = values.get(path, source)
    return out


def _expected(admin: dict) -> dict:
    """What the upgrade should produce: the example's keys, the admin's values."""
    return _merge(EXAMPLE_DATA, admin, ())


def _merge(default: Any, admin: Any, path: tuple[str, ...]) -> Any:
    if path in OWN_ENTRIES or not (isinstance(default, dict) and isinstance(admin, dict)):
        return admin
    out = {}
    for key, value in default.items():
        child = (*path, key)
        if key in admin:
            out[key] = _merge(value, admin[key], child)
        elif child not in OWN_ENTRIES and child != ("networks",) and path != ("networks",):
            out[key] = _without_own_entries(value, child)
    for key, value in admin.items():  # e.g. a network the example doesn't have
        out.setdefault(key, value)
    return out


def _without_own_entries(value: Any, path: tuple[str, ...]) -> Any:
    if not isinstance(value, dict):
        return value
    return {
        k: _without_own_entries(v, (*path, k))
        for k, v in value.items() if (*path, k) not in OWN_ENTRIES and (*path, k) != ("networks",)
    }


OWN_ENTRIES = {("bridge", "permissions"), ("logging", "modules")}


scalars = st.one_of(st.integers(-5, 10_000), st.booleans(), st.text("abcxyz:/._-", min_size=1, max_size=12))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kept=st.lists(st.sampled_from(LEAVES), min_size=1, unique=True),
    changes=st.dictionaries(st.sampled_from(LEAVES), scalars, max_size=6),
    indent=st.sampled_from([2, 3, 4]),
)
def test_any_older_config_upgrades_to_every_key_with_its_own_values(kept, changes, indent) -> None:
    admin = _subset(kept, {p: v for p, v in changes.items() if p in kept})
    text = "# my config\n" + yaml.safe_dump(admin, indent=indent, sort_keys=False, allow_unicode=True)
    result = upgrade_text(text, EXAMPLE)
    assert yaml.safe_load(result.text) == _expected(admin)
    assert is_subsequence([line for line in text.splitlines() if line.strip()], result.text.splitlines())
    assert upgrade_text(result.text, EXAMPLE).added == []
