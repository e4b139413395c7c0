"""The publish root's layout: where it is, LATEST, version records, and which blessed model is the reference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fake_upstream import published_latest

from hubpipe.components.common import publish_root, storage
from hubpipe.components.publish.tensorboard_resource import logs_path_for_cluster, tensorboard_resource, viewing_hints
from hubpipe.pipeline.core.config import PublishConfig, load_config
from hubpipe.pipeline.core.errors import ConfigError, PublishRootDamaged


def add_version(root: Path, version: str, key: str, reference: str | None, latest: bool = True) -> None:
    folder = root / "models" / version
    folder.mkdir(parents=True)
    record = {"version": version, "model": "m", "model_key": key, "reference": reference}
    (folder / "version.json").write_text(json.dumps(record))
    if latest:
        (root / "models" / "LATEST").write_text(version + "\n")


def test_default_root_is_in_the_hubpipe_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(tmp_path / "cache"))
    assert publish_root.resolve_root("") == str(tmp_path / "cache" / "published" / "default")
    assert publish_root.resolve_root("  ", "pets") == str(tmp_path / "cache" / "published" / "pets")
    assert publish_root.resolve_root("", "my run (2)") == str(tmp_path / "cache" / "published" / "my-run-2")
    assert publish_root.resolve_root(str(tmp_path / "shared"), "pets") == str(tmp_path / "shared")


def test_configured_roots_are_absolute_or_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert publish_root.resolve_root("pub") == str(tmp_path / "pub")
    assert publish_root.resolve_root("gs://bucket/hubpipe/") == "gs://bucket/hubpipe"
    assert publish_root.logs_dir("gs://bucket/hubpipe", "r1") == "gs://bucket/hubpipe/tensorboard/r1"
    assert publish_root.latest_path("gs://b") == "gs://b/models/LATEST"
    assert storage.is_remote("gs://b") and not storage.is_remote(str(tmp_path))


def test_latest_is_none_until_a_complete_version_is_there(tmp_path: Path) -> None:
    root = str(tmp_path)
    assert published_latest(root) is None
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "LATEST").write_text("v1\n")
    assert publish_root.read_latest_id(root) == "v1"
    assert published_latest(root) is None  # the folder has no version.json: incomplete
    add_version(tmp_path, "v1", "k1", None)
    assert published_latest(root).model_key == "k1"
    (tmp_path / "models" / "v1" / "version.json").write_text("{not json")
    assert published_latest(root) is None


def test_reference_skips_the_candidates_own_earlier_blessings(tmp_path: Path) -> None:
    root = str(tmp_path)
    add_version(tmp_path, "v1", "k1", None)
    add_version(tmp_path, "v2", "k2", "v1")
    add_version(tmp_path, "v3", "k3", "v2")
    assert publish_root.find_reference(root, ["other"]).version == "v3"
    assert publish_root.find_reference(root, ["k3"]).version == "v2"
    assert publish_root.find_reference(root, ["k3", "k2"]).version == "v1"
    assert publish_root.find_reference(root, ["k1", "k2", "k3"]) is None


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("no_folder", "(named by LATEST) is missing"),
        ("no_record", "(named by LATEST) has no version.json"),
        ("malformed", "(named by LATEST) has a malformed version.json"),
        ("not_an_object", "(named by LATEST) has a malformed version.json"),
        ("reference_gone", "(the reference of v2) is missing"),
    ],
)
def test_a_version_the_root_names_but_cannot_read_is_damage_not_nothing(
    tmp_path: Path, damage: str, problem: str
) -> None:
    root = str(tmp_path)
    add_version(tmp_path, "v1", "k1", None)
    add_version(tmp_path, "v2", "k2", "v1")
    record = tmp_path / "models" / "v2" / "version.json"
    if damage == "no_folder":
        (tmp_path / "models" / "LATEST").write_text("v9\n")
    elif damage == "no_record":
        record.unlink()
    elif damage == "malformed":
        record.write_text('{"model": "m", "model_k')
    elif damage == "not_an_object":
        record.write_text('["m"]')
    else:  # LATEST is the candidate itself: the reference it was compared with is what counts, and it is gone
        shutil.rmtree(tmp_path / "models" / "v1")
    own = ["k2"] if damage == "reference_gone" else ["other"]
    version = "v9" if damage == "no_folder" else "v1" if damage == "reference_gone" else "v2"
    with pytest.raises(PublishRootDamaged) as raised:
        publish_root.find_reference(root, own)
    message = str(raised.value)
    assert f"publish root {root}: the blessed version {version} {problem}" in message and "\n" not in message
    assert f"restore {tmp_path / 'models' / version}" in message and str(tmp_path / "models" / "LATEST") in message


@pytest.mark.parametrize("content", ["", "\n", "../elsewhere\n", "v1\nv2\n", "v1\rv2", "\udcff"])
def test_a_latest_that_holds_no_version_id_is_damage(tmp_path: Path, content: str) -> None:
    add_version(tmp_path, "v1", "k1", None)
    latest = tmp_path / "models" / "LATEST"
    latest.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(PublishRootDamaged, match=r"LATEST .*write the id of a complete version"):
        publish_root.read_latest_id(str(tmp_path))
    latest.unlink()  # only an absent LATEST is "nothing published yet"
    assert publish_root.read_latest_id(str(tmp_path)) is None and publish_root.find_reference(str(tmp_path), []) is None


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
