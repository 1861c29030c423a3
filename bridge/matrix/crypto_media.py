"""Attachments in encrypted rooms: AES-CTR encrypted files (the Matrix ``file`` object).

Into an encrypted room the bridge uploads only ciphertext; the file's key travels inside
the Megolm-encrypted event. Out of one, a file is downloaded and decrypted in memory.
AES over a large file is CPU work, so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from mautrix.crypto.attachments import decrypt_attachment, encrypt_attachment
from mautrix.errors import DecryptionError

_MAX_REMEMBERED = 1000


class MediaDecryptionError(Exception):
    """An encrypted attachment could not be decrypted (bad key, hash or iv)."""


async def decrypt_file(data: bytes, file: dict[str, Any]) -> bytes:
    """The plaintext of an attachment downloaded from the ``file`` object's url."""
    try:
        key = file["key"]["k"]
        sha256 = file["hashes"]["sha256"]
        iv = file["iv"]
    except (KeyError, TypeError) as e:
        raise MediaDecryptionError(f"the attachment's key is incomplete ({e})") from None
    try:
        return await asyncio.to_thread(decrypt_attachment, data, key, sha256, iv)
    except DecryptionError as e:
        raise MediaDecryptionError(f"the attachment could not be decrypted: {e}") from e


class EncryptedUploads:
    """Keys of files uploaded for encrypted rooms, until the event that uses them is sent.

    Only in memory, and only for the moment between upload and send: a restart repeats
    the whole step (the remote event is delivered again), upload included.
    """

    def __init__(self) -> None:
        self._keys: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def encrypt(self, data: bytes) -> tuple[bytes, dict[str, Any]]:
        ciphertext, info = await asyncio.to_thread(encrypt_attachment, data)
        return ciphertext, info.serialize()

    def remember(self, mxc: str, file_info: dict[str, Any]) -> None:
        self._keys[mxc] = {**file_info, "url": mxc}
        while len(self._keys) > _MAX_REMEMBERED:
            self._keys.popitem(last=False)

    def attach_keys(self, content: dict[str, Any]) -> dict[str, Any]:
        """``content`` with ``url``/``thumbnail_url`` of our encrypted uploads as ``file``."""
        url = content.get("url")
        if not isinstance(url, str) or url not in self._keys:
            return content
        # Kept (not popped): a send that is retried needs the key again.
        out = dict(content)
        out["file"] = dict(self._keys[url])
        del out["url"]
        info = out.get("info")
        if isinstance(info, dict) and info.get("thumbnail_url") in self._keys:
            info = dict(info)
            info["thumbnail_file"] = dict(self._keys[info.pop("thumbnail_url")])
            out["info"] = info
        return out
