"""The schema the examples are validated against: inferred by TFDV on the first run, then curated.

Curation keeps what matters for image classification and drops what would flag every new image: the class
names (``label/text``) and the image formats TensorFlow decodes (``image/format``) get fixed string domains,
``image/encoded`` gets an image domain (every value a supported image, at most ``data.max_file_bytes`` bytes),
and the per-image identifiers (id, sha256, source path) get no domain at all. Drift of the class distribution
is checked with TFDV's L-infinity comparator on ``label/text``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hubpipe.components.common import features as f
from hubpipe.pipeline.core.errors import ConfigError
from hubpipe.pipeline.core.runtime import import_tfdv

#: What tf.io.decode_image reads, as written in image/format.
SUPPORTED_FORMATS = ("bmp", "gif", "jpeg", "png")


def _schema_pb2() -> Any:
    from tensorflow_metadata.proto.v0 import schema_pb2

    return schema_pb2


def base_schema(max_image_bytes: int) -> Any:
    """The example format of features.py as a schema: types only, and the image domain."""
    schema_pb2 = _schema_pb2()
    schema = schema_pb2.Schema()
    for name in f.BYTES_FEATURES:
        schema.feature.add(name=name, type=schema_pb2.BYTES)
    for name in f.INT_FEATURES:
        schema.feature.add(name=name, type=schema_pb2.INT)
    set_image_domain(schema, max_image_bytes)
    return schema


def infer_schema(train_statistics: Any, labels: Sequence[str], max_image_bytes: int) -> Any:
    """TFDV's schema for the training statistics, curated (see the module docstring)."""
    tfdv = import_tfdv()

    schema = tfdv.infer_schema(train_statistics)
    del schema.string_domain[:]
    for feature in schema.feature:
        if feature.type == _schema_pb2().BYTES:
            feature.ClearField("domain_info")
    set_string_domain(schema, f.LABEL_TEXT, labels)
    set_string_domain(schema, f.FORMAT, SUPPORTED_FORMATS)
    set_string_domain(schema, f.SPLIT, f.SPLITS)
    set_image_domain(schema, max_image_bytes)
    return schema


def _feature(schema: Any, name: str) -> Any | None:
    return next((feature for feature in schema.feature if feature.name == name), None)


def set_string_domain(schema: Any, name: str, values: Sequence[str]) -> None:
    feature = _feature(schema, name)
    if feature is None:
        return
    feature.ClearField("domain_info")
    feature.string_domain.value.extend(values)


def string_domain(schema: Any, name: str) -> list[str] | None:
    """The values of a feature's string domain (inline or referenced by name), or None without one."""
    feature = _feature(schema, name)
    if feature is None:
        return None
    kind = feature.WhichOneof("domain_info")
    if kind == "string_domain":
        return list(feature.string_domain.value)
    if kind == "domain":
        named = next((d for d in schema.string_domain if d.name == feature.domain), None)
        return list(named.value) if named is not None else None
    return None


def set_image_domain(schema: Any, max_image_bytes: int, overwrite: bool = True) -> None:
    """Every encoded image must be a format TensorFlow decodes and at most ``max_image_bytes`` long."""
    feature = _feature(schema, f.IMAGE)
    if feature is None or (not overwrite and feature.WhichOneof("domain_info")):
        return
    feature.ClearField("domain_info")
    feature.image_domain.minimum_supported_image_fraction = 1.0
    feature.image_domain.max_image_byte_size = max_image_bytes


def set_drift_threshold(schema: Any, threshold: float) -> None:
    feature = _feature(schema, f.LABEL_TEXT)
    if feature is not None:
        feature.drift_comparator.infinity_norm.threshold = threshold


def load_schema(path: Path, setting: str = "validate.schema") -> Any:
    """A schema in text format; ConfigError with one line when it cannot be read or parsed."""
    from google.protobuf import text_format

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {setting} file {path}: {exc.strerror or exc}") from None
    try:
        return text_format.Parse(text, _schema_pb2().Schema())
    except text_format.ParseError as exc:
        raise ConfigError(f"{setting} file {path} is not a valid schema: {exc}") from None


def write_schema(schema: Any, path: Path) -> None:
    from google.protobuf import text_format

    from hubpipe.pipeline.core.artifacts import write_text_atomic

    write_text_atomic(path, text_format.MessageToString(schema))
