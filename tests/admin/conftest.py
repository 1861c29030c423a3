"""A bridge with the metrics endpoint and the provisioning API switched on.

It is the "admin" bridge of ``bridge_networks()`` (its own bot, ghost prefix, database
and ports), configured here the way an admin would: metrics with a token, provisioning
with a random shared secret.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from bridge.provisioning import PREFIX
from tests.support.bridge_env import BridgeUnderTest, free_port


@dataclass
class AdminBridge:
    env: BridgeUnderTest
    metrics_url: str
    metrics_token: str
    provisioning_url: str
    shared_secret: str
    http: aiohttp.ClientSession

    @property
    def api(self) -> str:
        return self.provisioning_url + PREFIX

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.shared_secret}"}

    async def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of ``/metrics`` by name and labels."""
        headers = {"Authorization": f"Bearer {self.metrics_token}"}
        async with self.http.get(self.metrics_url, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            text = await resp.text()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    async def call(
        self, method: str, path: str, *, user: str | None = None, body: Any = None,
        raw: bytes | None = None, headers: dict[str, str] | None = None, query: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """A provisioning request with the right secret (unless ``headers`` say otherwise)."""
        params = dict(query or {})
        if user is not None:
            params["user_id"] = user
        kwargs: dict[str, Any] = {"params": params, "headers": self.auth if headers is None else headers}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        async with self.http.request(method, self.api + path, **kwargs) as resp:
            data = await resp.json(content_type=None)
            return resp.status, data


def sample(samples: dict, name: str, **labels: str) -> float:
    """One sample's value, 0 when absent (a counter not yet incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def admin_bridge(synapse, bridge_envs: dict[str, BridgeUnderTest]) -> AsyncIterator[AdminBridge]:
    env = bridge_envs["admin"]
    metrics_port, provisioning_port = free_port(), free_port()
    metrics_token, shared_secret = secrets.token_hex(16), secrets.token_hex(32)
    env.settings = {
        "metrics": {"enabled": True, "listen": f"127.0.0.1:{metrics_port}", "token": metrics_token},
        "provisioning": {
            "enabled": True, "listen": f"127.0.0.1:{provisioning_port}", "shared_secret": shared_secret,
        },
    }
    env.write_config()
    await env.start()
    http = aiohttp.ClientSession()
    try:
        yield AdminBridge(
            env=env,
            metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
            metrics_token=metrics_token,
            provisioning_url=f"http://127.0.0.1:{provisioning_port}",
            shared_secret=shared_secret,
            http=http,
        )
    finally:
        await http.close()
        await env.stop()
