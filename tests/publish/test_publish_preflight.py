"""The publish root's preflight: a local root that hubpipe cannot write to stops ``hubpipe run`` before any
stage starts (one line, exit code 2), instead of after training."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from tiny_pipeline import tiny_config

from hubpipe.components.common import publish_root
from hubpipe.pipeline.core.config import load_config, to_yaml
from hubpipe.pipeline.core.errors import UsageError


def _mount(missing_tool: Callable[[str], NoReturn], *args: str) -> None:
    try:
        result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        missing_tool("no mount command: a read-only file system cannot be made for this test")
    if result.returncode != 0:
        missing_tool(f"cannot mount a tmpfs here ({result.stderr.strip()}): run the tests as root")


@pytest.fixture
def read_only_mount(tmp_path: Path, missing_tool: Callable[[str], NoReturn]) -> Iterator[Path]:
    """A publish root as a read-only mount leaves it: a small tmpfs holding models/ and tensorboard/, then
    remounted read-only (permission bits say nothing here, and root cannot write either)."""
    mount_point = tmp_path / "read-only"
    mount_point.mkdir()
    _mount(missing_tool, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point))
    try:
        for name in (publish_root.MODELS_DIR, publish_root.TENSORBOARD_DIR):
            (mount_point / name).mkdir()
        _mount(missing_tool, "-o", "remount,ro", str(mount_point))
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True, check=False)


@pytest.mark.parametrize("where", ["the_mount", "below_the_mount"])
def test_run_stops_before_ingest_on_a_read_only_publish_root(tmp_path: Path, read_only_mount: Path, where: str) -> None:
    root = read_only_mount if where == "the_mount" else read_only_mount / "not-created-yet"
    config_file = tmp_path / "config.yaml"
    config_file.write_text(to_yaml(tiny_config(tmp_path / "tiny", root)))
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "hubpipe.pipeline.cli", "run", "--config", str(config_file), "--output", str(run_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, "HUBPIPE_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [
        f"error: publish.root {root} is not writable: cannot create a file in {read_only_mount} "
        "(Read-only file system); set publish.root to a folder hubpipe may write to"
    ]
    assert not run_dir.exists()  # no run.json, no ingest folder: no stage started


def test_the_default_root_on_a_read_only_cache_folder_names_both_settings(
    read_only_mount: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(read_only_mount / "cache"))
    with pytest.raises(UsageError) as refused:
        publish_root.preflight(load_config())
    assert str(refused.value) == (
        f"publish.root {read_only_mount / 'cache' / 'published' / 'default'} is not writable: cannot create a "
        "file in "
        f"{read_only_mount} (Read-only file system); set publish.root (or HUBPIPE_CACHE_DIR, which holds the "
        "default root) to a folder hubpipe may write to"
    )


def test_a_writable_root_that_does_not_exist_yet_passes_and_nothing_is_created(tmp_path: Path) -> None:
    root = tmp_path / "new" / "published"
    publish_root.preflight(load_config(overrides={"publish.root": str(root)}))
    assert list(tmp_path.iterdir()) == []


def test_a_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="is not a folder"):
        publish_root.preflight(load_config(overrides={"publish.root": str(tmp_path / "file")}))


def test_a_remote_root_is_not_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publish_root, "require_writable", lambda root: pytest.fail(f"{root} was probed"))
    publish_root.preflight(load_config(overrides={"publish.root": "gs://bucket/published"}))
