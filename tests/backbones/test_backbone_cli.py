"""``hubpipe models``: list, pull and import, invoked through the click group."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from backbone_fixtures import OFFLINE_NAMES
from click.testing import CliRunner, Result

from hubpipe.components.backbones import backbone_fingerprint, offline, resolve_backbone
from hubpipe.components.backbones.manifest import read_manifest
from hubpipe.components.backbones.staging import import_offline
from hubpipe.pipeline.commands.models import models
from hubpipe.pipeline.core.errors import StageError, UsageError

MOBILENET = "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/4"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(models, list(args))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(root))
    return root


@pytest.fixture
def built_cache(cache: Path, lite0_saved_model: Path) -> Path:
    """The session's build placed where ``ensure_offline_model`` looks, so no test builds twice."""
    shutil.copytree(lite0_saved_model, offline.offline_model_dir())
    return cache


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A TFHUB_CACHE_DIR in which MobileNetV2 looks downloaded already (tensorflow_hub's layout)."""
    root = tmp_path / "tfhub"
    module = root / hashlib.sha1(MOBILENET.encode()).hexdigest()
    (module / "variables").mkdir(parents=True)
    (module / "saved_model.pb").write_bytes(b"graph")
    (module / "variables" / "variables.index").write_bytes(b"index")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(root))
    return root


def test_list_shows_presets_sizes_sources_and_availability(cache: Path, hub_cache: Path) -> None:
    result = invoke("list")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert set(lines) >= {"efficientnet_lite0", "resnet50v2", "efficientnetb0", "mobilenetv2", "efficientnetv2b0"}
    assert "(default)" in lines["efficientnet_lite0"] and "offline, builds on first use" in lines["efficientnet_lite0"]
    for name, size in (("efficientnet_lite1", "240"), ("efficientnet_lite2", "260")):
        assert lines[name].split()[1:4] == [size, "1280", "offline,"], lines[name]
        assert "offline, builds on first use" in lines[name] and "(default)" not in lines[name]
    assert "224" in lines["resnet50v2"] and "2048" in lines["resnet50v2"] and "needs network" in lines["resnet50v2"]
    assert "TF Hub cache" in lines["mobilenetv2"] and MOBILENET in lines["mobilenetv2"]


def test_import_copies_the_offline_build_with_its_identity(built_cache: Path, tmp_path: Path) -> None:
    assert "offline, built" in invoke("list").output
    dest = tmp_path / "pvc" / "lite0"
    result = invoke("import", "efficientnet_lite0", "--to", str(dest))
    assert result.exit_code == 0, result.output
    assert f"use it with --backbone {dest}" in result.output
    assert (dest / "saved_model.pb").is_file() and (dest / "variables" / "variables.index").is_file()
    lite0 = resolve_backbone("efficientnet_lite0")
    assert backbone_fingerprint(resolve_backbone(str(dest))) == backbone_fingerprint(lite0)
    assert resolve_backbone(str(dest)).output_dim == 1280
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]  # no partial copies left


@pytest.mark.parametrize(("name", "size"), [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_import_builds_each_offline_backbone_by_name(
    name: str, size: int, cache: Path, offline_saved_model: Callable[[str], Path], tmp_path: Path
) -> None:
    """``hubpipe models import NAME --to DIR`` for the new presets; the copy trains at the preset's size."""
    shutil.copytree(offline_saved_model(name), cache / "models" / offline_saved_model(name).name)  # session's build
    dest = tmp_path / "pvc" / name
    result = invoke("import", name, "--to", str(dest))
    assert result.exit_code == 0, result.output
    assert f"built {name} at {dest}" in result.output
    staged = resolve_backbone(str(dest))
    assert backbone_fingerprint(staged) == backbone_fingerprint(resolve_backbone(name))
    assert (staged.input_size, staged.output_dim) == (size, 1280)
    assert read_manifest(dest)["name"] == name


def test_a_prebuilt_folder_serves_each_preset_by_its_own_name(
    cache: Path, offline_saved_model: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the container image does: each preset resolves to its baked copy, $HUBPIPE_MODELS_DIR/<name>, with
    nothing built and no weights package needed; a copy of another build is not taken for it."""
    baked = tmp_path / "opt-models"
    for name in OFFLINE_NAMES:
        shutil.copytree(offline_saved_model(name), cache / "models" / offline_saved_model(name).name)
        assert invoke("import", name, "--to", str(baked / name)).exit_code == 0
    monkeypatch.setenv(offline.MODELS_DIR_ENV, str(baked))
    monkeypatch.setattr(offline, "build_offline_model", lambda *a: pytest.fail("nothing should be built"))
    for name in OFFLINE_NAMES:
        assert resolve_backbone(name).handle == str(baked / name)
        assert offline.ensure_offline_model(offline.find_variant(name)) == baked / name
    shutil.rmtree(baked / "efficientnet_lite1")
    shutil.copytree(baked / "efficientnet_lite2", baked / "efficientnet_lite1")
    lite1 = offline.find_variant("efficientnet_lite1")
    assert lite1 is not None and offline.offline_model_dir(lite1).parent == cache / "models"


def test_a_non_empty_destination_needs_force(built_cache: Path, tmp_path: Path) -> None:
    dest = tmp_path / "taken"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    result = invoke("import", "efficientnet_lite0", "--to", str(dest))
    assert isinstance(result.exception, UsageError) and "--force" in str(result.exception)
    assert (dest / "keep.txt").exists()
    assert invoke("import", "efficientnet_lite0", "--to", str(dest), "--force").exit_code == 0
    assert not (dest / "keep.txt").exists() and (dest / "saved_model.pb").exists()


def test_pull_stores_a_resolved_handle_under_the_sources_fingerprint(hub_cache: Path, tmp_path: Path) -> None:
    dest = tmp_path / "staged" / "mobilenetv2"
    result = invoke("pull", "mobilenetv2", "--to", str(dest))  # resolved from TFHUB_CACHE_DIR: no network
    assert result.exit_code == 0, result.output
    assert (dest / "saved_model.pb").read_bytes() == b"graph"
    manifest = read_manifest(dest)
    assert manifest["source"] == MOBILENET and manifest["output_dim"] == 1280
    assert backbone_fingerprint(resolve_backbone(str(dest))) == MOBILENET


def test_pull_without_network_fails_with_one_line(cache: Path, tmp_path: Path) -> None:
    dest = tmp_path / "never"
    result = invoke("pull", "http://127.0.0.1:9/model", "--to", str(dest))
    assert isinstance(result.exception, StageError)
    message = str(result.exception)
    assert "\n" not in message and "cannot download http://127.0.0.1:9/model" in message
    assert not dest.exists()


def test_usage_mistakes() -> None:
    assert invoke("pull", "mobilenetv2").exit_code == 2  # --to is required
    assert invoke("import", "resnet50v2", "--to", "x").exit_code == 2  # only the offline backbones are built
    with pytest.raises(
        UsageError, match="offline backbones: efficientnet_lite0, efficientnet_lite1, efficientnet_lite2"
    ):
        import_offline("x", name="resnet50v2")
    result = invoke("pull", "no-such-backbone", "--to", "x")
    assert isinstance(result.exception, UsageError) and "presets:" in str(result.exception)
