"""The provisioning API: an HTTP API for login flows, chats and linking (docs/provisioning.md)."""

from __future__ import annotations

from .api import PREFIX, ProvisioningAPI, openapi_document

__all__ = ["PREFIX", "ProvisioningAPI", "openapi_document"]
