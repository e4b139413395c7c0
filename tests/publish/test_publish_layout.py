"""The publish root's layout: where it is, LATEST, version records, and which blessed model is the reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hubpipe.components.common import publish_root, storage
from hubpipe.components.publish.tensorboard_resource import logs_path_for_cluster, tensorboard_resource, viewing_hints
from hubpipe.pipeline.config import PublishConfig, load_config
from hubpipe.pipeline.errors import ConfigError


def add_version(root: Path, version: str, key: str, reference: str | None, latest: bool = True) -> None:
    folder = root / "models" / version
    folder.mkdir(parents=True)
    record = {"version": version, "model": "m", "model_key": key, "reference": reference}
    (folder / "version.json").write_text(json.dumps(record))
    if latest:
        (root / "models" / "LATEST").write_text(version + "\n")


def test_default_root_is_in_the_hubpipe_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(tmp_path / "cache"))
    assert publish_root.resolve_root("") == str(tmp_path / "cache" / "published")
    assert publish_root.resolve_root("  ") == str(tmp_path / "cache" / "published")


def test_configured_roots_are_absolute_or_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert publish_root.resolve_root("pub") == str(tmp_path / "pub")
    assert publish_root.resolve_root("gs://bucket/hubpipe/") == "gs://bucket/hubpipe"
    assert publish_root.logs_dir("gs://bucket/hubpipe", "r1") == "gs://bucket/hubpipe/tensorboard/r1"
    assert publish_root.latest_path("gs://b") == "gs://b/models/LATEST"
    assert storage.is_remote("gs://b") and not storage.is_remote(str(tmp_path))


def test_latest_is_none_until_a_complete_version_is_there(tmp_path: Path) -> None:
    root = str(tmp_path)
    assert publish_root.read_latest(root) is None
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "LATEST").write_text("v1\n")
    assert publish_root.read_latest_id(root) == "v1"
    assert publish_root.read_latest(root) is None  # the folder has no version.json: incomplete
    add_version(tmp_path, "v1", "k1", None)
    assert publish_root.read_latest(root).model_key == "k1"
    (tmp_path / "models" / "v1" / "version.json").write_text("{not json")
    assert publish_root.read_latest(root) is None


def test_reference_skips_the_candidates_own_earlier_blessings(tmp_path: Path) -> None:
    root = str(tmp_path)
    add_version(tmp_path, "v1", "k1", None)
    add_version(tmp_path, "v2", "k2", "v1")
    add_version(tmp_path, "v3", "k3", "v2")
    assert publish_root.find_reference(root, ["other"]).version == "v3"
    assert publish_root.find_reference(root, ["k3"]).version == "v2"
    assert publish_root.find_reference(root, ["k3", "k2"]).version == "v1"
    assert publish_root.find_reference(root, ["k1", "k2", "k3"]) is None


def test_reference_walk_stops_on_a_cycle(tmp_path: Path) -> None:
    add_version(tmp_path, "v1", "k1", "v2", latest=False)
    add_version(tmp_path, "v2", "k1", "v1")
    assert publish_root.find_reference(str(tmp_path), ["k1"]) is None


def test_write_text_atomic_replaces_whole_files_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "models" / "LATEST"
    storage.write_text_atomic(str(target), "v1\n")
    storage.write_text_atomic(str(target), "v2\n")
    assert target.read_text() == "v2\n"
    assert [p.name for p in target.parent.iterdir()] == ["LATEST"]


def test_cluster_logs_path_prefers_the_pvc_then_gcs() -> None:
    assert logs_path_for_cluster(PublishConfig(pvc_name="vol", pvc_path="/tb/"), "/mnt/x/tensorboard") == "pvc://vol/tb"
    assert logs_path_for_cluster(PublishConfig(), "gs://b/root/tensorboard") == "gs://b/root/tensorboard"
    assert logs_path_for_cluster(PublishConfig(), "/home/me/published/tensorboard") is None
    resource = tensorboard_resource(PublishConfig(tensorboard_name="tb-1"), "gs://b/root/tensorboard")
    assert "logspath: gs://b/root/tensorboard" in resource.manifest and "name: tb-1" in resource.manifest


@pytest.mark.parametrize(
    ("setting", "value"),
    [("publish.tensorboard_name", "HubPipe"), ("publish.namespace", "team_a"), ("publish.pvc_name", "-logs")],
)
def test_kubernetes_names_are_checked_with_the_config(setting: str, value: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        load_config(overrides={setting: value})
    assert load_config(overrides={"publish.pvc_name": "logs.v1", "publish.namespace": "team-a"}).publish.pvc_name


def test_tensorboard_viewing_hints_say_how_to_open_the_logs() -> None:
    hints = viewing_hints("tensorboard.yaml", "", "team-a", "gs://b/tensorboard")
    assert hints[0] == "locally: hubpipe tensorboard --logdir gs://b/tensorboard"
    assert "kubectl apply -f <publish stage folder>/tensorboard.yaml" in hints[1] and "team-a" in hints[1]
