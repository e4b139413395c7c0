"""The three offline EfficientNet-Lite SavedModels: the architecture each checkpoint needs, parity with the
original PyTorch models at each model's own input size, real photos, and what the build records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import skimage.data
from backbone_fixtures import OFFLINE_NAMES, OFFLINE_SIZES, eval_preprocess, load_reference

from hubpipe.components.backbones import backbone_fingerprint, offline, resolve_backbone
from hubpipe.components.backbones.efficientnet_lite import block_configs
from hubpipe.components.backbones.manifest import read_manifest
from hubpipe.components.backbones.torch_checkpoint import load_state_dict
from hubpipe.pipeline.core.errors import DataError
from hubpipe.pipeline.core.runtime import import_tensorflow

CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug
LOGITS_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def tf() -> ModuleType:
    return import_tensorflow()


@pytest.fixture(scope="module", params=OFFLINE_NAMES)
def variant(request: pytest.FixtureRequest) -> offline.LiteVariant:
    found = offline.find_variant(request.param)
    assert found is not None
    return found


@pytest.fixture(scope="module")
def built(variant: offline.LiteVariant, offline_saved_model: Callable[[str], Path]) -> Path:
    return offline_saved_model(variant.name)


@pytest.fixture(scope="module")
def loaded(tf: ModuleType, built: Path) -> Any:
    """The SavedModel as TF Hub users see it (``hub.load`` is ``tf.saved_model.load``)."""
    return tf.saved_model.load(str(built))


def test_the_variants_are_the_reference_family() -> None:
    assert OFFLINE_NAMES == offline.NAMES and offline.NAME == "efficientnet_lite0"
    assert {v.name: v.input_size for v in offline.VARIANTS} == OFFLINE_SIZES
    assert {v.name: (v.width, v.depth) for v in offline.VARIANTS} == {
        "efficientnet_lite0": (1.0, 1.0),
        "efficientnet_lite1": (1.0, 1.1),
        "efficientnet_lite2": (1.1, 1.2),
    }


@pytest.mark.parametrize("name", OFFLINE_NAMES)
def test_the_block_layout_fits_the_checkpoint_tensor_by_tensor(name: str) -> None:
    """Depth and width scaling checked against the real checkpoint: block count, kernels, channels, strides'
    positions (the expand conv exists exactly where the expansion ratio is not 1)."""
    variant = offline.find_variant(name)
    assert variant is not None
    state = load_state_dict(offline.locate_weights(variant))
    blocks = block_configs(variant)
    assert len(blocks) == len({key.split(".")[1] for key in state if key.startswith("_blocks.")})
    for block in blocks:
        prefix = f"_blocks.{block.index}."
        hidden = block.filters_in * block.expand
        assert (prefix + "_expand_conv.weight" in state) == (block.expand != 1)
        if block.expand != 1:
            assert state[prefix + "_expand_conv.weight"].shape == (hidden, block.filters_in, 1, 1)
        assert state[prefix + "_depthwise_conv.weight"].shape == (hidden, 1, block.kernel, block.kernel)
        assert state[prefix + "_project_conv.weight"].shape == (block.filters_out, hidden, 1, 1)
    assert state["_conv_head.weight"].shape == (1280, blocks[-1].filters_out, 1, 1)
    print(f"{name}: {len(blocks)} blocks, stage outputs {sorted({b.filters_out for b in blocks})}")


def test_imagenet_logits_match_the_pytorch_reference(tf: ModuleType, loaded: Any, variant: offline.LiteVariant) -> None:
    reference = load_reference(variant.name)
    images = reference["images"].astype(np.float32) / 255.0
    assert images.shape == (4, variant.input_size, variant.input_size, 3)
    logits = loaded.signatures["imagenet_logits"](images=tf.constant(images))["logits"].numpy()
    difference = np.abs(logits - reference["logits"]).max()
    print(f"{variant.name} imagenet_logits max abs diff vs PyTorch: {difference:.2e}")
    assert logits.shape == (4, 1000)
    assert difference <= LOGITS_TOLERANCE
    assert (logits.argmax(axis=1) == reference["logits"].argmax(axis=1)).all()
    served = loaded.signatures["serving_default"](images=tf.constant(images))["feature_vector"].numpy()
    called = loaded(tf.constant(images), training=False).numpy()
    assert served.shape == called.shape == (4, 1280)
    assert np.abs(served - reference["features"]).max() <= LOGITS_TOLERANCE
    np.testing.assert_allclose(called, served, atol=1e-5)


@pytest.mark.parametrize(("photo", "expected"), [("chelsea", CATS), ("coffee", COFFEE)])
def test_real_photos_are_recognised(
    tf: ModuleType, loaded: Any, variant: offline.LiteVariant, photo: str, expected: set[int]
) -> None:
    image = eval_preprocess(getattr(skimage.data, photo)(), variant.input_size)
    logits = loaded.signatures["imagenet_logits"](images=tf.constant(image[None]))["logits"].numpy()[0]
    top5 = [int(i) for i in np.argsort(-logits)[:5]]
    print(f"{variant.name} {photo} top-5 ImageNet classes: {top5}")
    assert expected & set(top5)


def test_the_build_records_its_size_and_identity(built: Path, variant: offline.LiteVariant) -> None:
    """Cached under its own name in the session's cache; a copy used by path keeps its input size."""
    assert built.name == f"{variant.name}-{offline.offline_fingerprint(variant)}"
    manifest = read_manifest(built)
    assert manifest["name"] == variant.name and manifest["source"] == f"{variant.distribution}==0.1.0"
    assert (manifest["input_size"], manifest["output_dim"]) == (OFFLINE_SIZES[variant.name], 1280)
    assert f"{variant.input_size}/{variant.input_size + 32}" in manifest["preprocessing"]
    preset = resolve_backbone(variant.name)
    assert preset.handle == str(built) and preset.input_size == OFFLINE_SIZES[variant.name]
    assert manifest["fingerprint"] == backbone_fingerprint(preset) == backbone_fingerprint(resolve_backbone(str(built)))
    assert resolve_backbone(str(built)).input_size == OFFLINE_SIZES[variant.name]


def test_a_checkpoint_of_another_variant_is_refused_in_one_line(tf: ModuleType) -> None:
    """Lite1's and Lite2's checkpoints have the same tensor names (21 blocks) but other widths; Lite0's has fewer
    blocks. Either way the build stops with a DataError instead of exporting a wrong model."""
    from hubpipe.components.backbones.efficientnet_lite import _load_weights

    lite0, lite1, lite2 = (offline.find_variant(name) for name in OFFLINE_NAMES)
    assert lite0 is not None and lite1 is not None and lite2 is not None
    lite1_state = load_state_dict(offline.locate_weights(lite1))
    with pytest.raises(DataError, match=r"does not fit EfficientNet-Lite2 at block4_project_conv"):
        _load_weights(tf, lite1_state, lite2)
    with pytest.raises(DataError, match=r"lacks '_blocks\.16\..*not an EfficientNet-Lite1 state dict"):
        _load_weights(tf, load_state_dict(offline.locate_weights(lite0)), lite1)
