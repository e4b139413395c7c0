"""The layer contracts of ``.importlinter`` hold for the code, and fail on an upward import.

``make lint`` runs the same check (``tools/lint_imports.py``); here it also runs over a view with one bad module
added, to show that the contracts see what they are meant to forbid.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def lint_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lint_imports", REPO / "tools" / "lint_imports.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    if shutil.which("lint-imports") is None and not (REPO / ".venv" / "bin" / "lint-imports").exists():
        pytest.fail("lint-imports is not installed (make setup installs it from constraints.txt)")
    return lint_tool()


@pytest.fixture
def view(tool: ModuleType, tmp_path: Path) -> Path:
    return tool.build_view(tmp_path / "view")


def test_the_view_maps_the_folders_as_setup_py_installs_them(view: Path) -> None:
    assert (view / "hubpipe" / "__init__.py").resolve() == REPO / "pipeline" / "hubpipe_package" / "__init__.py"
    assert (view / "hubpipe" / "pipeline" / "core" / "execution.py").resolve() == REPO / "pipeline/core/execution.py"
    assert (view / "hubpipe" / "components" / "train" / "layout.py").is_symlink()
    assert not (view / "hubpipe" / "pipeline" / "hubpipe_package").exists()  # installed as `hubpipe` only


def test_the_code_keeps_every_contract(tool: ModuleType, view: Path) -> None:
    result = tool.lint_imports(view)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


#: A module added to the view, what it imports, and the name of the contract that breaks.
FORBIDDEN = {
    "the CLI from the core": ("pipeline/core/upward.py", "from hubpipe.pipeline.cli import main", "The core imports"),
    "shared code from the core": ("pipeline/core/upward.py", "from hubpipe.components.common import uris", "Layers:"),
    "a stage's core from another": (
        "components/evaluate/peek.py",
        "from hubpipe.components.train.core import train",
        "layout",
    ),
    "the runner from a stage": (
        "components/train/peek.py",
        "from hubpipe.pipeline.local_runner import run_pipeline",
        "core",
    ),
}


@pytest.mark.parametrize(("module", "code", "broken"), FORBIDDEN.values(), ids=FORBIDDEN)
def test_an_upward_or_sideways_import_breaks_a_contract(
    tool: ModuleType, view: Path, module: str, code: str, broken: str
) -> None:
    (view / "hubpipe" / module).write_text(code + "\n")
    result = tool.lint_imports(view)
    assert result.returncode != 0
    broken_lines = [line for line in result.stdout.splitlines() if "BROKEN" in line]
    assert any(broken in line for line in broken_lines), result.stdout
