"""The networks this bridge knows, imported only when enabled in the config.

A new network is one line here plus its package; nothing registers itself on import.
"""

from __future__ import annotations

import importlib

from ..core.connector import Connector

KNOWN_NETWORKS: dict[str, str] = {
    "loopback": "bridge.networks.loopback.connector:LoopbackConnector",
    "signal": "bridge.networks.signal.connector:SignalConnector",
    "telegram": "bridge.networks.telegram.connector:TelegramConnector",
    "whatsapp": "bridge.networks.whatsapp.connector:WhatsAppConnector",
}


def connector_class(network: str) -> type[Connector]:
    try:
        target = KNOWN_NETWORKS[network]
    except KeyError:
        known = ", ".join(sorted(KNOWN_NETWORKS))
        raise KeyError(f"unknown network '{network}' (known: {known})") from None
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)
