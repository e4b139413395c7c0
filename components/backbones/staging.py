"""Staging backbones for machines without internet: copy a resolved SavedModel to a directory or bucket.

``pull`` resolves a handle once through tensorflow_hub (which downloads into ``TFHUB_CACHE_DIR``) and copies
the SavedModel to the destination; ``import_offline`` does the same for an offline build (``efficientnet_lite0``,
``efficientnet_lite1``, ``efficientnet_lite2``). Destinations are written through ``tf.io.gfile`` so that
``gs://`` works. A local destination appears atomically (copied next to it, then renamed); in a bucket the
manifest is written last and marks completion.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hubpipe.components.backbones import offline
from hubpipe.components.backbones.manifest import MANIFEST_NAME, manifest_text, read_manifest, write_manifest
from hubpipe.components.backbones.registry import BackboneSpec, backbone_fingerprint, is_remote, resolve_backbone
from hubpipe.pipeline.core.errors import StageError, UsageError

LOG = logging.getLogger(__name__)


def _prepare_destination(tf: Any, dest: str, force: bool) -> str:
    """The normalised destination; refuses an existing non-empty one unless ``force`` (it is replaced later)."""
    if not dest.strip():
        raise UsageError("empty destination")
    if not is_remote(dest):
        dest = str(Path(dest).expanduser().resolve())
    if tf.io.gfile.exists(dest):
        if not tf.io.gfile.isdir(dest):
            raise UsageError(f"{dest} exists and is not a directory")
        if tf.io.gfile.listdir(dest) and not force:
            raise UsageError(f"{dest} exists and is not empty; choose another destination or pass --force")
    return dest


def _copy_tree(tf: Any, source: str, dest: str, skip: tuple[str, ...] = ()) -> int:
    """Copies every file below ``source`` to ``dest``; returns the number of files."""
    copied = 0
    for directory, _subdirs, files in tf.io.gfile.walk(source):
        relative = os.path.relpath(directory, source)
        target_dir = dest if relative == "." else f"{dest.rstrip('/')}/{relative}"
        tf.io.gfile.makedirs(target_dir)
        for name in files:
            if relative == "." and name in skip:
                continue
            tf.io.gfile.copy(f"{directory}/{name}", f"{target_dir}/{name}", overwrite=True)
            copied += 1
    return copied


def _write_staged(tf: Any, source: str, dest: str, manifest: dict[str, Any]) -> None:
    """Copies the SavedModel at ``source`` to ``dest`` with ``manifest``, replacing what is there.

    Locally the copy is made beside ``dest`` and renamed into place; in a bucket ``dest`` is cleared first and
    the manifest, written last, marks a complete copy.
    """
    if is_remote(dest):
        if tf.io.gfile.exists(dest):
            tf.io.gfile.rmtree(dest)
        _copy_tree(tf, source, dest, skip=(MANIFEST_NAME,))
        with tf.io.gfile.GFile(f"{dest.rstrip('/')}/{MANIFEST_NAME}", "w") as file:
            file.write(manifest_text(manifest))
        return
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        _copy_tree(tf, source, str(staging), skip=(MANIFEST_NAME,))
        write_manifest(staging, manifest)
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stage_manifest(spec: BackboneSpec, source_manifest: dict[str, Any]) -> dict[str, Any]:
    manifest = {
        **source_manifest,
        "name": spec.name,
        "source": source_manifest.get("source") or spec.handle,
        "fingerprint": backbone_fingerprint(spec),
        "input_size": spec.input_size,
        "input_range": list(spec.input_range),
        "staged_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if spec.output_dim:
        manifest["output_dim"] = spec.output_dim
    return manifest


def _resolve_online(hub: Any, spec: BackboneSpec) -> str:
    """A local (or bucket) directory holding the SavedModel; downloads into ``TFHUB_CACHE_DIR`` if needed."""
    try:
        return str(hub.resolve(spec.handle))
    except Exception as exc:  # URLError, tf.errors.*, ValueError...
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise StageError(
            f"cannot download {spec.handle}: {reason}; `hubpipe models pull` needs network access to the model "
            "host, so run it on a machine that has it and copy the result"
        ) from exc


def import_offline(dest: str, force: bool = False, name: str = offline.NAME) -> str:
    """Builds (or reuses the cached) SavedModel of the offline backbone ``name`` and copies it to ``dest``."""
    variant = offline.find_variant(name)
    if variant is None:
        raise UsageError(f"{name!r} is not an offline backbone; offline backbones: {', '.join(offline.NAMES)}")
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    dest = _prepare_destination(tf, dest, force)
    source = offline.ensure_offline_model(variant)
    spec = resolve_backbone(variant.name)
    _write_staged(tf, str(source), dest, _stage_manifest(spec, read_manifest(source)))
    LOG.info("staged %s at %s", variant.name, dest)
    return dest


def pull(name_or_handle: str, dest: str, force: bool = False) -> str:
    """Resolves a preset or handle once (online) and stores its SavedModel at ``dest`` (a directory or bucket)."""
    spec = resolve_backbone(name_or_handle)
    if offline.find_variant(spec.name):
        return import_offline(dest, force, spec.name)
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    import tensorflow_hub as hub

    dest = _prepare_destination(tf, dest, force)
    source = _resolve_online(hub, spec)
    if not tf.io.gfile.exists(f"{source}/saved_model.pb"):
        raise StageError(f"{spec.handle} did not resolve to a TF2 SavedModel (no saved_model.pb in {source})")
    source_manifest = {} if is_remote(source) else read_manifest(Path(source))
    _write_staged(tf, source, dest, _stage_manifest(spec, source_manifest))
    LOG.info("staged %s at %s; use it with --backbone %s", spec.handle, dest, dest)
    return dest
