"""Build glue that pyproject.toml cannot express.

Two things: (1) the package source lives in `harness/` and `tasks/` but imports as
`implicit_if`, so subpackages are discovered here and renamed; (2) a tiny `.pth` file is
placed at the root of site-packages so that lm-eval finds the `implicit_if` tasks without
`--include_path` (see harness/lm_eval_hook.py for why and how it is guarded).
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent
PTH_NAME = "implicit_if_lm_eval.pth"


def discover_packages() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for source_root, import_root in (("harness", "implicit_if"), ("tasks", "implicit_if.tasks")):
        for init in sorted((ROOT / source_root).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / source_root)
            name = ".".join([import_root, *rel.parts]) if rel.parts else import_root
            packages.append(name)
            package_dir[name] = str(init.parent.relative_to(ROOT))
    return packages, package_dir


class BuildPyWithHook(build_py):
    """build_py that also ships the lm-eval discovery hook as a top-level .pth file."""

    def run(self) -> None:
        super().run()
        target = os.path.join(self.build_lib, PTH_NAME)
        self.copy_file(str(ROOT / "harness" / PTH_NAME), target)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH_NAME)]


packages, package_dir = discover_packages()
setup(packages=packages, package_dir=package_dir, cmdclass={"build_py": BuildPyWithHook})
