"""The Telegram connector on the lowest Telethon of the supported range.

pyproject.toml states the supported range (``telethon>=LOW,<HIGH`` in the ``telegram``
extra). The normal test run uses the installed Telethon, which ``pip install -e
'.[test,all]'`` makes the newest of the range; this test runs the Telegram connector's
tests once more, in a subprocess that imports Telethon LOW first (PYTHONPATH).

Telethon LOW is installed once into ``.tools/telethon-LOW/`` (git-ignored) with ``pip
install --target --no-deps`` (its dependencies, rsa and pyaes, come from the environment)
and reused by later runs; a fresh clone (CI) downloads it once, about 1 MB from PyPI. In
CI a failed download fails the test; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
import telethon
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools"
TESTS = "tests/telegram"
# Everything in tests/telegram that needs no Synapse, except this test itself.
SELECTION = "not synapse and not telethon_range"

pytestmark = pytest.mark.telethon_range


def supported_range() -> tuple[Version, Version]:
    """(lowest, first unsupported) from the ``telegram`` extra in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirement = next(Requirement(r) for r in project["optional-dependencies"]["telegram"]
                       if Requirement(r).name.lower() == "telethon")
    bounds = {spec.operator: Version(spec.version) for spec in requirement.specifier}
    assert set(bounds) == {">=", "<"}, f"state Telethon as a range '>=LOW,<HIGH', not {requirement.specifier}"
    return bounds[">="], bounds["<"]


def installed_version(target: Path) -> Version | None:
    for info in target.glob("[Tt]elethon-*.dist-info"):
        return Version(info.name.removesuffix(".dist-info").split("-")[1])
    return None


def ensure_telethon(version: Version) -> Path:
    """``.tools/telethon-VERSION``, installed there unless it already is."""
    target = TOOLS / f"telethon-{version}"
    if installed_version(target) == version:
        return target
    TOOLS.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".telethon-{version}-", dir=TOOLS))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--target", str(staging), f"telethon=={version}"],
            capture_output=True, text=True, timeout=300,
        )
        if result.returncode != 0:
            message = f"can't install Telethon {version} from PyPI: {result.stderr.strip()[-1500:]}"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        if installed_version(target) != version:  # another run may have finished first
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def test_the_connector_tests_pass_on_the_lowest_supported_telethon() -> None:
    lowest, first_unsupported = supported_range()
    assert lowest <= Version(telethon.__version__) < first_unsupported, (
        f"the environment's Telethon {telethon.__version__} is outside the supported range")
    target = ensure_telethon(lowest)
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(target), str(ROOT), os.environ.get("PYTHONPATH")]))}

    probe = subprocess.run([sys.executable, "-c", "import telethon; print(telethon.__version__, telethon.__file__)"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    version, location = probe.stdout.split()
    assert Version(version) == lowest and Path(location).is_relative_to(target), probe.stdout

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", SELECTION, TESTS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:]
    assert run.returncode == 0, f"on Telethon {lowest}:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 0, summary
    assert "skipped" not in summary and "xfail" not in summary, summary
