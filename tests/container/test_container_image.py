"""The image's entry point and contents: hubpipe's arguments go to hubpipe (`podman run IMAGE run ...`), other
commands run as they are (a Kubeflow component's `sh -c ...` under Docker), always as the non-root user."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from podman import IMAGE_UID, podman, run_in_image
from tiny_pipeline import TINY_EXAMPLES, tiny_config

pytestmark = pytest.mark.container


def test_without_arguments_the_image_shows_hubpipe_help(image: str) -> None:
    result = run_in_image([])
    assert result.returncode == 0, result.stderr
    assert "Usage: hubpipe" in result.stdout and "run" in result.stdout


def test_another_command_runs_as_it_is_as_the_non_root_user(image: str) -> None:
    result = run_in_image(["sh", "-c", "id -u; id -g; echo $HOME"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(IMAGE_UID), str(IMAGE_UID), "/home/hubpipe"]
    assert run_in_image(["no-such-command"]).returncode == 127


def test_a_replaced_entry_point_works_as_kubernetes_does_it(image: str) -> None:
    result = run_in_image(["--version"], "--entrypoint", "hubpipe")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("hubpipe, version")


def test_the_baked_backbones_are_the_ones_the_presets_resolve_to(image: str) -> None:
    code = "from hubpipe.components.backbones import offline as o; print(*(o.offline_model_dir(v) for v in o.VARIANTS))"
    result = run_in_image(["python3", "-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"/opt/hubpipe/models/efficientnet_lite{n}" for n in range(3)]


def test_no_compiler_and_no_build_leftovers_in_the_image(image: str) -> None:
    result = run_in_image(["sh", "-c", "command -v g++ gcc cc; ls /src /opt/hubpipe/build 2>&1; true"])
    assert "/g++" not in result.stdout and "/gcc" not in result.stdout
    assert result.stdout.count("No such file or directory") == 2


def test_run_until_validate_with_the_image_as_a_command(image: str, tmp_path: Path) -> None:
    tiny_config(tmp_path, tmp_path / "published")  # makes tmp_path/data
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    args = ["run", "--until", "validate", "--data", "/data", "--set", "validate.min_images_per_class=2"]
    result = run_in_image(
        [*args, "--output", "/out"], "--network", "none", "-v", f"{tmp_path / 'data'}:/data:ro", "-v", f"{out}:/out"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "run.json").read_text())
    assert [(stage["name"], stage["status"]) for stage in report["stages"]] == [("ingest", "ran"), ("validate", "ran")]
    assert report["stages"][0]["results"]["examples_written"] == TINY_EXAMPLES
    assert (out / "run.json").stat().st_uid == IMAGE_UID


def test_the_image_is_labelled_with_its_user_and_entry_point(image: str) -> None:
    (inspected,) = json.loads(podman("image", "inspect", image).stdout)
    config = inspected["Config"]
    assert config["User"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert config["Entrypoint"] == ["hubpipe-entrypoint"]
