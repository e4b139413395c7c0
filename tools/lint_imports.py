"""Checks the import contracts of ``.importlinter`` (the layers) with import-linter.

import-linter reads a package from the folders it is imported from and cannot follow setuptools' ``package_dir``
mapping (``pipeline/`` is ``hubpipe.pipeline``, ``pipeline/hubpipe_package/`` is ``hubpipe``), so this script
builds a throw-away view of the package as installed: real folders named as the packages, each holding symbolic
links to the repository's ``.py`` files. The mapping is the one setup.py gives setuptools. ``lint-imports`` then
runs with the view first on ``PYTHONPATH``.

Usage: ``python tools/lint_imports.py [lint-imports options]`` from anywhere; ``make lint`` runs it.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / ".importlinter"


def package_folders(repo: Path = REPO) -> dict[str, Path]:
    """Each installed package and the repository folder that holds it, from setup.py's own arguments."""
    captured: dict[str, Any] = {}
    cwd = Path.cwd()
    os.chdir(repo)  # setup.py reads files relative to its folder
    try:
        with mock.patch("setuptools.setup", side_effect=lambda **kwargs: captured.update(kwargs)):
            runpy.run_path(str(repo / "setup.py"), run_name="setup")
    finally:
        os.chdir(cwd)
    mapping: dict[str, str] = captured["package_dir"]
    return {package: repo / _folder(package, mapping) for package in captured["packages"]}


def _folder(package: str, mapping: dict[str, str]) -> str:
    """The folder of ``package`` under setuptools' rule: its nearest mapped ancestor's folder plus the rest."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        base = ".".join(parts[:cut])
        if base in mapping:
            return "/".join([mapping[base], *parts[cut:]])
    return "/".join(parts)


def build_view(dest: Path, repo: Path = REPO) -> Path:
    """Writes the view of the installed packages into ``dest`` (which must not exist yet) and returns it."""
    for package, folder in package_folders(repo).items():
        target = dest.joinpath(*package.split("."))
        target.mkdir(parents=True)
        for source in sorted(folder.glob("*.py")):
            (target / source.name).symlink_to(source)
    return dest


def lint_imports(view: Path, *args: str, config: Path = CONFIG) -> subprocess.CompletedProcess[str]:
    """Runs ``lint-imports`` over ``view`` with the contracts of ``config``; its output is captured."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(view), os.environ.get("PYTHONPATH")]))}
    command = [str(Path(sys.executable).with_name("lint-imports")), "--config", str(config), "--no-cache", *args]
    return subprocess.run(command, env=env, cwd=view, capture_output=True, text=True, check=False)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="hubpipe-import-view-") as tmp:
        result = lint_imports(build_view(Path(tmp) / "view"), *argv)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
