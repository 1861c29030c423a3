"""(d) Stages (b) and (c) in encrypted portals: the same workload, through the encrypting
bridge (``bench/encrypted_side.py``), watched and sent by a matrix-nio client that
really decrypts and encrypts.

The runner drives it with the (b) and (c) code on the encrypting bridge's side, its
floods alternating with theirs round by round. What this module adds is the proof that
the figures are about encrypted messages: every portal room is encrypted, and every
benchmark message the client counted arrived encrypted and was decrypted.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from ..nio_watcher import DecryptingWatcher
from ..side import BridgeSide


def checks(side: BridgeSide) -> dict[str, Any]:
    """What the decrypting client saw: encryption of the rooms and of the messages."""
    watcher = side.watcher
    assert isinstance(watcher, DecryptingWatcher)
    plaintext, undecrypted = watcher.plaintext, watcher.undecrypted
    if plaintext:
        raise RuntimeError(f"{plaintext} benchmark messages arrived unencrypted in an "
                           "encrypted portal")
    return {
        "rooms_encrypted": all(watcher.is_encrypted(r) for r in side.portal_rooms),
        "messages_decrypted_by_client": len(watcher.seen),
        "events_left_undecrypted": undecrypted,
        "client": f"matrix-nio {metadata.version('matrix-nio')} (encryption on)",
        "bridge_rss_mib": side.bridge.rss_mib()[0],
    }
