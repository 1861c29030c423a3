"""Schemathesis against the provisioning API's OpenAPI document, on the running bridge.

Schemathesis (its command line, as an admin or a CI job would run it) loads the document
from ``/openapi.json`` and sends generated requests, valid and invalid, to every
operation. Every check runs: no server errors, every status code and body as documented,
invalid data rejected, requests without the secret refused, 405 with ``Allow`` for
methods the API lacks. It runs twice: once with generated ``user_id`` values (nearly all
refused before reaching the bridge's logic) and once with a permitted user, so the
requests get as far as the login processes, logins and linking.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

from tests.admin.conftest import AdminBridge
from tests.conftest import unique

pytestmark = pytest.mark.synapse


def schemathesis_command() -> list[str]:
    st = Path(sys.executable).with_name("st")
    if st.exists():
        return [str(st)]
    found = shutil.which("st")
    # Installed with the test extra; a missing tool must fail the test, not skip it.
    assert found, "schemathesis is missing: pip install -e '.[test]'"
    return [found]


async def run_schemathesis(admin_bridge: AdminBridge, workdir: Path, *, user_id: str | None) -> str:
    config = workdir / "schemathesis.toml"
    lines = ["[generation]", "database = \"none\""]
    if user_id is not None:
        # Long polls (``wait``, up to 30 s) would make the run slow; one test checks them.
        lines += ["", "[parameters]", f'"query.user_id" = "{user_id}"', '"query.wait" = 0.1']
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        *schemathesis_command(),
        "--config-file", str(config),
        "run", admin_bridge.provisioning_url + "/openapi.json",
        "--header", f"Authorization: Bearer {admin_bridge.shared_secret}",
        "--checks", "all",
        "--max-examples", "15",
        "--workers", "1",
        "--seed", "11",
        "--no-color",
        "--phases", "examples,coverage,fuzzing",
        "--request-timeout", "20",
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode("utf-8", "replace")
    assert process.returncode == 0, text
    return text


async def test_schemathesis_finds_no_deviation_from_the_openapi_document(
    admin_bridge: AdminBridge, tmp_path: Path
) -> None:
    text = await run_schemathesis(admin_bridge, tmp_path, user_id=None)
    assert "No issues found" in text or "passed" in text.lower(), text


async def test_schemathesis_with_a_permitted_user_finds_no_deviation(
    admin_bridge: AdminBridge, tmp_path: Path
) -> None:
    user = f"@{unique('fuzzed')}:localhost"
    admin_bridge.env.allow(user, "user")
    text = await run_schemathesis(admin_bridge, tmp_path, user_id=user)
    assert "No issues found" in text or "passed" in text.lower(), text
