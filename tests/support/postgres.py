"""PostgreSQL for tests: required in CI, skipped with a reason elsewhere when absent."""

from __future__ import annotations

import os

import pytest

POSTGRES_ENV = "BRIDGE_TEST_POSTGRES"


def postgres_server_url() -> str:
    """The server URL from ``BRIDGE_TEST_POSTGRES``; fails in CI and skips elsewhere if unset."""
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"PostgreSQL is required in CI: set {POSTGRES_ENV} to a server URL, "
            "e.g. postgres://postgres@127.0.0.1:5432/postgres"
        )
    pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgres://postgres@127.0.0.1/postgres)")
