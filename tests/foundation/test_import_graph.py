"""The import graph of the stage packages: a stage reads another stage only through its published layout."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hubpipe.pipeline.stages import stage_names

COMPONENTS = Path(__file__).resolve().parents[2] / "components"
PREFIX = "hubpipe.components."


def imported_modules(path: Path) -> list[str]:
    """Every name ``path`` imports, in full (``from a.b import c`` gives ``a.b.c``; relative names resolved)."""
    package = f"{PREFIX}{path.parent.name}"
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package if node.level else ""
            module = f"{base}.{node.module}" if base and node.module else (node.module or base)
            names.extend(f"{module}.{alias.name}" for alias in node.names)
    return names


def stage_modules() -> list[Path]:
    return sorted(path for stage in stage_names() for path in (COMPONENTS / stage).glob("*.py"))


def violations(path: Path) -> list[str]:
    own = path.parent.name
    found = []
    for module in imported_modules(path):
        if module == "hubpipe.pipeline.runner" or module.startswith("hubpipe.pipeline.runner."):
            found.append(f"{module} (the local runner)")
        parts = module.split(".")
        other_stage = module.startswith(PREFIX) and len(parts) > 2 and parts[2] in stage_names() and parts[2] != own
        if other_stage and (len(parts) < 4 or parts[3] != "layout"):
            found.append(module)
    return found


@pytest.mark.parametrize("path", stage_modules(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_stage_module_imports_other_stages_only_through_their_layout(path: Path) -> None:
    assert violations(path) == []


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    folder = tmp_path / "evaluate"
    folder.mkdir()
    (folder / "bad.py").write_text(
        "from hubpipe.components.train.session import MODELS_DIR\n"
        "from hubpipe.components.train import layout\n"
        "from hubpipe.pipeline.runner import run_pipeline\n"
        "from .core import evaluate\n"
    )
    assert violations(folder / "bad.py") == [
        "hubpipe.components.train.session.MODELS_DIR",
        "hubpipe.pipeline.runner.run_pipeline (the local runner)",
    ]


def test_every_stage_has_a_layout_module() -> None:
    assert [stage for stage in stage_names() if not (COMPONENTS / stage / "layout.py").is_file()] == []
