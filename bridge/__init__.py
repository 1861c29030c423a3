"""A self-hosted Matrix bridge that links Telegram, Signal, WhatsApp and more to a homeserver."""

__version__ = "0.1.0"
