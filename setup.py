"""Build hook: ship config.example.yaml inside the package as well.

``upgrade-config`` reads the example to learn new keys and their comments, so an
installed bridge needs it; the file stays at the top of the repository, where admins
look for it. (All other metadata is in pyproject.toml.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

EXAMPLE = Path(__file__).resolve().parent / "config.example.yaml"


class BuildWithExampleConfig(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "bridge" / "config.example.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(EXAMPLE, target)


setup(cmdclass={"build_py": BuildWithExampleConfig})
