"""Backbones: named TF Hub feature extractors, any handle, and the offline ``efficientnet_lite0``.

Importing this package does not import TensorFlow; :func:`load_feature_extractor` does.
"""

from hubpipe.components.backbones.registry import (
    DEFAULT_BACKBONE,
    BackboneSpec,
    backbone_fingerprint,
    list_backbones,
    load_feature_extractor,
    resolve_backbone,
)

__all__ = [
    "DEFAULT_BACKBONE",
    "BackboneSpec",
    "backbone_fingerprint",
    "list_backbones",
    "load_feature_extractor",
    "resolve_backbone",
]
