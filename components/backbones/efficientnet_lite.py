"""EfficientNet-Lite0/1/2 in tf.keras, loaded from PyTorch checkpoints and exported as TF Hub feature vectors.

The architecture follows the reference PyTorch implementation (``efficientnet_lite_pytorch``, itself a port of
the official TensorFlow EfficientNet-Lite builder), which the checkpoints were converted for:

* stem 3x3/2 conv with 32 filters and head 1x1 conv with 1280 filters (not width-scaled for Lite),
* seven stages of MBConv blocks (expand 1x1, depthwise kxk, project 1x1) without squeeze-excite, ReLU6
  activations, a residual connection when stride is 1 and the channel count is unchanged,
* compound scaling per variant (:class:`~.lite_variant.LiteVariant`): the stages' filters are multiplied by ``width``
  and rounded to multiples of 8 (never down by more than 10%), the repeats of stages 2-6 by ``depth`` and rounded
  up; the first and last stages keep their repeats. Lite0 has 16 blocks, Lite1 and Lite2 21,
* TensorFlow "SAME" padding everywhere (the reference's static same-padding pads ``total // 2`` before and
  the rest after, which is exactly what ``padding="same"`` does in TensorFlow),
* BatchNorm with epsilon 1e-3 and (TensorFlow) momentum 0.99,
* global average pooling, then (for ImageNet logits only) a 1280 -> 1000 dense layer.

Input normalisation is part of the model: images are float32 RGB in [0, 1] (the TF Hub convention) and are
mapped to ``(255 * x - 127) / 128``, the normalisation the official EfficientNet-Lite checkpoints were trained
with. (The reference package's README shows the usual ImageNet mean/std; on real photos those give visibly
less confident predictions with these weights.)

The exported SavedModel follows TF Hub's reusable SavedModel conventions: ``obj(images, training=False)``
returns ``[batch, 1280]`` features, ``obj.variables`` / ``obj.trainable_variables`` /
``obj.regularization_losses`` are there for ``hub.KerasLayer(..., trainable=True)``, and the signatures
``serving_default`` (``feature_vector``) and ``imagenet_logits`` (``logits``) take ``images``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hubpipe.components.backbones.hub_format import feature_vector_root
from hubpipe.components.backbones.lite_variant import FEATURE_DIM, LiteVariant
from hubpipe.components.backbones.manifest import write_manifest
from hubpipe.pipeline.core.errors import DataError

LOG = logging.getLogger(__name__)

NUM_CLASSES = 1000
STEM_FILTERS = 32
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
FILTER_DIVISOR = 8
#: ``(255 * x - 127) / 128`` written as ``x * scale + offset`` for inputs in [0, 1].
INPUT_SCALE = 255.0 / 128.0
INPUT_OFFSET = -127.0 / 128.0
#: (repeats, kernel, first stride, expand ratio, output filters) per stage, before scaling (EfficientNet-Lite0).
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
#: The official EfficientNet evaluation crops ``size / (size + CROP_PADDING)`` of the shorter side.
CROP_PADDING = 32


def preprocessing(size: int) -> str:
    """How an image should be prepared for a model of input ``size``, as the reference evaluates."""
    return (
        f"RGB float32 in [0, 1], {size}x{size}; for evaluation as in the reference, centre-crop {size}/"
        f"{size + CROP_PADDING} of the shorter side and resize to {size} with bicubic interpolation; "
        "normalisation happens inside the model"
    )


@dataclass(frozen=True)
class BlockConfig:
    """One MBConv block; ``index`` is its position in the checkpoint (``_blocks.<index>``)."""

    index: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


def round_filters(filters: int, width: float) -> int:
    """A stage's filters scaled by ``width``: to the nearest multiple of 8, and never more than 10% down."""
    scaled = filters * width
    rounded = max(FILTER_DIVISOR, int(scaled + FILTER_DIVISOR / 2) // FILTER_DIVISOR * FILTER_DIVISOR)
    return rounded + FILTER_DIVISOR if rounded < 0.9 * scaled else rounded


def stage_repeats(stage: int, repeats: int, depth: float) -> int:
    """A stage's block count: scaled by ``depth`` and rounded up, except the first and last stages (Lite)."""
    return repeats if stage in (0, len(STAGES) - 1) else math.ceil(depth * repeats)


def block_configs(variant: LiteVariant) -> list[BlockConfig]:
    """The MBConv blocks of ``variant`` in order."""
    blocks: list[BlockConfig] = []
    filters_in = STEM_FILTERS
    for stage, (repeats, kernel, stride, expand, filters) in enumerate(STAGES):
        filters_out = round_filters(filters, variant.width)
        for repeat in range(stage_repeats(stage, repeats, variant.depth)):
            first_stride = stride if repeat == 0 else 1
            blocks.append(BlockConfig(len(blocks), kernel, first_stride, expand, filters_in, filters_out))
            filters_in = filters_out
    return blocks


def _conv(tf: Any, filters: int, kernel: int, stride: int, name: str) -> Any:
    return tf.keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=name)


def _batch_norm(tf: Any, name: str) -> Any:
    return tf.keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def _mbconv(tf: Any, x: Any, block: BlockConfig) -> Any:
    layers = tf.keras.layers
    prefix = f"block{block.index}_"
    inputs = x
    if block.expand != 1:
        x = _conv(tf, block.filters_in * block.expand, 1, 1, prefix + "expand_conv")(x)
        x = _batch_norm(tf, prefix + "expand_bn")(x)
        x = layers.ReLU(6.0, name=prefix + "expand_relu6")(x)
    x = layers.DepthwiseConv2D(
        block.kernel, strides=block.stride, padding="same", use_bias=False, name=prefix + "dwconv"
    )(x)
    x = _batch_norm(tf, prefix + "dwconv_bn")(x)
    x = layers.ReLU(6.0, name=prefix + "dwconv_relu6")(x)
    x = _conv(tf, block.filters_out, 1, 1, prefix + "project_conv")(x)
    x = _batch_norm(tf, prefix + "project_bn")(x)
    if block.stride == 1 and block.filters_in == block.filters_out:
        x = layers.Add(name=prefix + "add")([x, inputs])
    return x


def build_feature_model(tf: Any, variant: LiteVariant) -> Any:
    """The feature extractor as a Keras functional model: ``[b, h, w, 3]`` in [0, 1] -> ``[b, 1280]``."""
    layers = tf.keras.layers
    images = layers.Input(shape=(None, None, 3), dtype="float32", name="images")
    x = layers.Rescaling(INPUT_SCALE, offset=INPUT_OFFSET, name="normalize")(images)
    x = _conv(tf, STEM_FILTERS, 3, 2, "stem_conv")(x)
    x = _batch_norm(tf, "stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu6")(x)
    for block in block_configs(variant):
        x = _mbconv(tf, x, block)
    x = _conv(tf, FEATURE_DIM, 1, 1, "head_conv")(x)
    x = _batch_norm(tf, "head_bn")(x)
    x = layers.ReLU(6.0, name="head_relu6")(x)
    features = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return tf.keras.Model(images, features, name=variant.name)


def _conv_kernel(weight: np.ndarray) -> np.ndarray:
    """torch ``(out, in, kh, kw)`` -> Keras ``(kh, kw, in, out)``."""
    return weight.transpose(2, 3, 1, 0)


def _depthwise_kernel(weight: np.ndarray) -> np.ndarray:
    """torch ``(channels, 1, kh, kw)`` -> Keras ``(kh, kw, channels, 1)``."""
    return weight.transpose(2, 3, 0, 1)


def _bn_weights(state: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    return [state[prefix + s] for s in ("weight", "bias", "running_mean", "running_var")]


def keras_weights_from_torch(state: dict[str, np.ndarray], variant: LiteVariant) -> dict[str, list[np.ndarray]]:
    """Maps the checkpoint onto Keras layer names: ``{layer name: [weights in Keras order]}``.

    The ``"logits"`` entry is the ImageNet classifier. Raises :class:`DataError` if the checkpoint has
    tensors this mapping does not use (another architecture) or lacks some (a truncated file).
    """
    weights: dict[str, list[np.ndarray]] = {
        "stem_conv": [_conv_kernel(state["_conv_stem.weight"])],
        "stem_bn": _bn_weights(state, "_bn0."),
        "head_conv": [_conv_kernel(state["_conv_head.weight"])],
        "head_bn": _bn_weights(state, "_bn1."),
        "logits": [state["_fc.weight"].T, state["_fc.bias"]],
    }
    for block in block_configs(variant):
        torch_prefix, keras_prefix = f"_blocks.{block.index}.", f"block{block.index}_"
        if block.expand != 1:
            weights[keras_prefix + "expand_conv"] = [_conv_kernel(state[torch_prefix + "_expand_conv.weight"])]
            weights[keras_prefix + "expand_bn"] = _bn_weights(state, torch_prefix + "_bn0.")
        weights[keras_prefix + "dwconv"] = [_depthwise_kernel(state[torch_prefix + "_depthwise_conv.weight"])]
        weights[keras_prefix + "dwconv_bn"] = _bn_weights(state, torch_prefix + "_bn1.")
        weights[keras_prefix + "project_conv"] = [_conv_kernel(state[torch_prefix + "_project_conv.weight"])]
        weights[keras_prefix + "project_bn"] = _bn_weights(state, torch_prefix + "_bn2.")
    used = sum(len(w) for w in weights.values())
    expected = sum(1 for name in state if not name.endswith("num_batches_tracked"))
    if used != expected:
        raise DataError(f"checkpoint has {expected} weight tensors, {variant.title} uses {used}")
    return weights


def _load_weights(tf: Any, state: dict[str, np.ndarray], variant: LiteVariant) -> tuple[Any, Any]:
    """Builds the feature model and the ImageNet classifier with the checkpoint's weights."""
    try:
        weights = keras_weights_from_torch(state, variant)
    except KeyError as exc:
        raise DataError(f"checkpoint lacks {exc.args[0]!r}; it is not an {variant.title} state dict") from exc
    model = build_feature_model(tf, variant)
    for layer in model.layers:
        if layer.weights:
            try:
                layer.set_weights([w.astype(np.float32) for w in weights.pop(layer.name)])
            except ValueError as exc:  # shapes of another width
                raise DataError(f"checkpoint does not fit {variant.title} at {layer.name}: {exc}") from exc
    classifier = tf.keras.layers.Dense(NUM_CLASSES, name="logits")
    classifier.build((None, FEATURE_DIM))
    classifier.set_weights([w.astype(np.float32) for w in weights.pop("logits")])
    if weights:
        raise DataError(f"checkpoint weights left unused: {sorted(weights)[:3]}")
    return model, classifier


def _export_root(tf: Any, model: Any, classifier: Any) -> tuple[Any, dict[str, Any]]:
    """The object to save (reusable SavedModel attributes and ``__call__``) and its signatures."""
    image_spec = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")

    @tf.function(input_signature=[image_spec])
    def feature_vector(images: Any) -> dict[str, Any]:
        return {"feature_vector": model(images, training=False)}

    @tf.function(input_signature=[image_spec])
    def imagenet_logits(images: Any) -> dict[str, Any]:
        return {"logits": classifier(model(images, training=False))}

    root = feature_vector_root(tf, model, image_spec)
    root.imagenet_classifier_variables = list(classifier.variables)
    return root, {"serving_default": feature_vector, "imagenet_logits": imagenet_logits}


def export_saved_model(
    state: dict[str, np.ndarray], dest: Path, manifest: dict[str, Any], variant: LiteVariant
) -> Path:
    """Writes the SavedModel of ``variant`` with the weights ``state`` into the (empty or missing) ``dest``.

    ``manifest`` is written into it (see :func:`.manifest.write_manifest`), with the model's shapes added.
    """
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    model, classifier = _load_weights(tf, state, variant)
    root, signatures = _export_root(tf, model, classifier)
    tf.saved_model.save(root, str(dest), signatures=signatures)
    full_manifest = {
        **manifest,
        "input_size": variant.input_size,
        "input_range": [0.0, 1.0],
        "output_dim": FEATURE_DIM,
        "signatures": {"serving_default": "feature_vector", "imagenet_logits": "logits"},
        "preprocessing": preprocessing(variant.input_size),
    }
    write_manifest(dest, full_manifest)
    return dest
