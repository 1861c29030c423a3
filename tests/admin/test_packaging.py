"""`pip install .` ships what the bridge reads at run time, and a console script."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from bridge import __version__

REPO = Path(__file__).resolve().parents[2]


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout
    return [line for line in out.splitlines() if (REPO / line).is_file()]


async def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    text = output.decode("utf-8", "replace")
    assert process.returncode == 0, f"{args}: {text}"
    return text


async def test_the_wheel_holds_the_example_config_the_openapi_document_and_the_console_script(
    tmp_path: Path,
) -> None:
    source = tmp_path / "source"
    for name in tracked_files():  # a clean copy: the build must not litter the worktree
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((REPO / name).read_bytes())
    wheels = tmp_path / "wheels"
    # Without build isolation: the test extra installs setuptools and wheel, and the
    # machines running the tests may have no index to fetch them from.
    await run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
              "--wheel-dir", str(wheels), str(source), cwd=tmp_path)
    (wheel,) = wheels.glob("hub_bridge-*.whl")
    assert wheel.name.startswith(f"hub_bridge-{__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "bridge/config.example.yaml" in names
        assert "bridge/provisioning/openapi.yaml" in names
        assert archive.read("bridge/config.example.yaml") == (REPO / "config.example.yaml").read_bytes()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "hub-bridge = bridge.__main__:main" in archive.read(entry_points).decode()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        assert "Requires-Dist: prometheus-client" in metadata and "Requires-Dist: ruamel.yaml" in metadata

    # The installed copy, away from the source tree, finds its example config.
    installed = tmp_path / "installed"
    await run(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(installed),
              str(wheel), cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(installed)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    version = await run(sys.executable, "-m", "bridge", "--version", cwd=elsewhere, env=env)
    assert version.strip() == f"hub-bridge {__version__}"
    (elsewhere / "config.yaml").write_text("homeserver:\n  domain: my.server\n", encoding="utf-8")
    out = await run(sys.executable, "-c",
                    "import bridge, sys; print(bridge.__file__); "
                    "from bridge.__main__ import main; sys.exit(main(['upgrade-config']))",
                    cwd=elsewhere, env=env)
    assert str(installed) in out and "metrics" in out
    assert "provisioning:" in (elsewhere / "config.yaml").read_text(encoding="utf-8")


def test_the_systemd_unit_and_the_dockerfile_run_the_console_script() -> None:
    unit = (REPO / "deploy" / "hub-bridge.service").read_text(encoding="utf-8")
    assert "ExecStart=/opt/hub-bridge/.venv/bin/hub-bridge -c /var/lib/hub-bridge/config.yaml" in unit
    for hardening in ("ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "PrivateTmp=yes"):
        assert hardening in unit
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM python:3.12-slim" in dockerfile
    assert 'CMD ["hub-bridge", "-c", "/data/config.yaml"]' in dockerfile
    assert "USER hubbridge" in dockerfile
