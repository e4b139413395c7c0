"""How the pipeline runs on a cluster: image, resources, accelerators, volumes. Pure data, validated once.

These are not pipeline settings (they do not change results) and so are not part of
:class:`~hubpipe.pipeline.core.config.PipelineConfig`; ``hubpipe compile`` and ``hubpipe submit`` take them as flags.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from hubpipe.components.backbones.offline import NAMES as OFFLINE_BACKBONES
from hubpipe.pipeline.core.errors import UsageError
from hubpipe.pipeline.core.version import __version__

IMAGE_REPOSITORY = "ghcr.io/hubpipe/hubpipe"
#: The project's image, pinned to this version; the CPU variant carries the ``-cpu`` suffix.
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"
DEFAULT_CPU_IMAGE = f"{DEFAULT_IMAGE}-cpu"
GPU_RESOURCE = "nvidia.com/gpu"
#: Where the image holds the offline backbones, baked in at build time and named by $HUBPIPE_MODELS_DIR there.
BAKED_MODELS_DIR = "/opt/hubpipe/models"
BAKED_BACKBONES = OFFLINE_BACKBONES

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|[KMGTPE]i?)?$")


@dataclass(frozen=True)
class Resources:
    """CPU and memory requests and limits of a task, as Kubernetes quantities."""

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


#: Per-stage defaults; stages not listed get FALLBACK_RESOURCES.
DEFAULT_RESOURCES: Mapping[str, Resources] = MappingProxyType(
    {
        "ingest": Resources("1", "2", "2Gi", "4Gi"),
        "validate": Resources("1", "2", "4Gi", "8Gi"),
        "train": Resources("4", "8", "16Gi", "32Gi"),  # each backbone's task, and the baseline's
        "train-collect": Resources("500m", "1", "1Gi", "2Gi"),  # copies the train tasks' folders into one
        "evaluate": Resources("2", "4", "8Gi", "16Gi"),
        "publish": Resources("500m", "1", "1Gi", "2Gi"),
    }
)
FALLBACK_RESOURCES = Resources("1", "2", "4Gi", "8Gi")


@dataclass(frozen=True)
class KubeflowOptions:
    """Everything :func:`~hubpipe.pipeline.kubeflow.pipeline_definition.create_pipeline` needs besides the
    configuration."""

    image: str = DEFAULT_IMAGE
    pipeline_name: str = "hubpipe"
    accelerator_type: str = GPU_RESOURCE  # the extended resource name, e.g. nvidia.com/gpu
    accelerator_count: int = 1  # per accelerated task; 0 runs everything on CPU
    accelerator_stages: tuple[str, ...] = ("train",)
    resources: Mapping[str, Resources] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    caching: bool = True
    retries: int = 2  # for the stages that read or write external storage
    retry_stages: tuple[str, ...] = ("ingest", "publish")
    pvc_name: str = ""  # when set, mounted in every task (data, caches, publish root)
    pvc_mount_path: str = "/mnt/hubpipe"

    def resources_for(self, stage: str) -> Resources:
        return self.resources.get(stage, FALLBACK_RESOURCES)

    def accelerated(self, stage: str) -> bool:
        return self.accelerator_count > 0 and stage in self.accelerator_stages

    @property
    def cache_dir(self) -> str:
        """HUBPIPE_CACHE_DIR of every task when a volume is mounted (shared caches across runs), else empty."""
        return f"{self.pvc_mount_path.rstrip('/')}/cache" if self.pvc_name else ""


def validate_options(options: KubeflowOptions) -> KubeflowOptions:
    """Checks the options; raises UsageError with one readable line."""
    if not options.image.strip() or any(c.isspace() for c in options.image):
        raise UsageError(f"image must be a container image reference, got {options.image!r}")
    if not _DNS_LABEL.match(options.pipeline_name):
        raise UsageError(f"pipeline name must be a lowercase DNS label, got {options.pipeline_name!r}")
    if options.accelerator_count < 0:
        raise UsageError(f"accelerator count must not be negative, got {options.accelerator_count}")
    if options.accelerator_count and not options.accelerator_type.strip():
        raise UsageError("accelerator type must not be empty when accelerators are requested")
    if options.retries < 0:
        raise UsageError(f"retries must not be negative, got {options.retries}")
    if options.pvc_name and not _DNS_LABEL.match(options.pvc_name):
        raise UsageError(f"PVC name must be a lowercase DNS label, got {options.pvc_name!r}")
    if not options.pvc_mount_path.startswith("/"):
        raise UsageError(f"PVC mount path must be absolute, got {options.pvc_mount_path!r}")
    for stage, resources in options.resources.items():
        for name, value in vars(resources).items():
            if not _QUANTITY.match(value):
                raise UsageError(f"{stage} {name.replace('_', ' ')} is not a Kubernetes quantity: {value!r}")
    return options
