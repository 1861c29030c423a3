"""The ``encryption:`` config section, the registration it needs, and attachment crypto."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config import (
    PICKLE_KEY_EXAMPLE,
    Config,
    ConfigError,
    EncryptionConfig,
    load_config,
    load_dataclass,
    validate,
)
from bridge.matrix.crypto_media import EncryptedUploads, MediaDecryptionError, decrypt_file
from bridge.registration import build_registration, load_registration, write_registration

ROOT = Path(__file__).resolve().parent.parent
SECRET = "correct horse battery staple, but longer"


def config_with(encryption: dict, tmp_path: Path | None = None) -> Config:
    data = {
        "homeserver": {"domain": "test.local"},
        "encryption": encryption,
        "networks": {"loopback": {}},
    }
    config = load_dataclass(Config, data, "")
    if tmp_path is not None:
        config.path = tmp_path / "config.yaml"
    return config


def test_the_example_config_has_the_encryption_section_switched_off() -> None:
    data = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    config = load_dataclass(Config, data, "")
    assert config.encryption == EncryptionConfig()
    assert config.encryption.pickle_key == PICKLE_KEY_EXAMPLE


def test_start_up_refuses_the_example_pickle_key_without_repeating_it() -> None:
    config = config_with({"allow": True})
    with pytest.raises(ConfigError) as e:
        validate(config)
    assert "encryption.pickle_key" in str(e.value)
    assert PICKLE_KEY_EXAMPLE not in str(e.value)


def test_a_short_pickle_key_is_refused_without_repeating_it() -> None:
    config = config_with({"allow": True, "pickle_key": "short1234"})
    with pytest.raises(ConfigError) as e:
        validate(config)
    assert "short1234" not in str(e.value)


def test_the_pickle_key_never_shows_in_the_config_repr_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    config = config_with({"allow": True, "pickle_key": SECRET})
    validate(config)
    logging.getLogger("bridge").info("Loaded config: %s", config)
    assert SECRET not in repr(config)
    assert SECRET not in caplog.text


@pytest.mark.parametrize("key", ["default", "require"])
def test_default_and_require_need_allow(key: str) -> None:
    with pytest.raises(ConfigError, match=f"encryption.{key}"):
        validate(config_with({key: True}))


def test_waiting_times_must_make_sense() -> None:
    bad = {"allow": True, "pickle_key": SECRET, "key_wait_seconds": 30, "key_give_up_seconds": 5}
    with pytest.raises(ConfigError, match="key_wait_seconds"):
        validate(config_with(bad))


def test_the_registration_asks_for_appservice_encryption_only_when_allowed(tmp_path: Path) -> None:
    plain = build_registration(config_with({}))
    assert "org.matrix.msc3202" not in plain and "io.element.msc4190" not in plain
    encrypted = build_registration(config_with({"allow": True, "pickle_key": SECRET}))
    assert encrypted["org.matrix.msc3202"] is True
    assert encrypted["io.element.msc4190"] is True
    assert encrypted["receive_ephemeral"] is True  # to-device events come with ephemeral ones


def test_an_old_registration_is_refused_once_encryption_is_allowed(tmp_path: Path) -> None:
    config = config_with({}, tmp_path)
    write_registration(config)
    load_registration(config)
    config.encryption = EncryptionConfig(allow=True, pickle_key=SECRET)
    with pytest.raises(ConfigError, match="generate the registration again"):
        load_registration(config)
    write_registration(config)
    assert load_registration(config).sender_localpart == config.appservice.bot_username


def test_config_file_with_encryption_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "homeserver": {"domain": "test.local"},
        "encryption": {"allow": True, "default": True, "pickle_key": SECRET},
    }), encoding="utf-8")
    config = load_config(path)
    assert config.encryption.allow and config.encryption.default


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=4096))
async def test_attachments_round_trip_through_their_encryption(data: bytes) -> None:
    uploads = EncryptedUploads()
    ciphertext, file_info = await uploads.encrypt(data)
    assert len(ciphertext) == len(data)
    assert await decrypt_file(ciphertext, file_info) == data


async def test_a_tampered_attachment_is_refused() -> None:
    uploads = EncryptedUploads()
    ciphertext, file_info = await uploads.encrypt(b"a photo of the garden")
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    with pytest.raises(MediaDecryptionError):
        await decrypt_file(tampered, file_info)
    with pytest.raises(MediaDecryptionError):
        await decrypt_file(ciphertext, {"iv": file_info["iv"]})


async def test_an_encrypted_upload_is_sent_as_a_file_object_with_its_key() -> None:
    uploads = EncryptedUploads()
    _, file_info = await uploads.encrypt(b"data")
    uploads.remember("mxc://test.local/abc", file_info)
    content = {"msgtype": "m.image", "body": "a.png", "url": "mxc://test.local/abc", "info": {}}
    sent = uploads.attach_keys(content)
    assert "url" not in sent
    assert sent["file"]["url"] == "mxc://test.local/abc"
    assert sent["file"]["key"] == file_info["key"]
    assert uploads.attach_keys(content) == sent  # a retried send gets the key again
    other = {"msgtype": "m.image", "body": "b.png", "url": "mxc://test.local/plain"}
    assert uploads.attach_keys(other) is other
