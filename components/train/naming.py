"""Model names: short, path-safe and unique within a run."""

from __future__ import annotations

import re
from collections.abc import Sequence

SCRATCH_MODEL = "scratch_cnn"
FINE_TUNED_SUFFIX = "_fine_tuned"
_SAFE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_URL_PARTS_KEPT = 3  # e.g. resnet_v2_50/feature_vector/5


def model_slug(backbone_name: str) -> str:
    """A folder name for a backbone: a preset name as is, a URL's last parts, a local directory's name."""
    if _SAFE.fullmatch(backbone_name):
        return backbone_name
    is_url = bool(_URL_SCHEME.match(backbone_name))
    parts = [part for part in re.split(r"[/\\]+", _URL_SCHEME.sub("", backbone_name)) if part not in ("", ".", "..")]
    kept = parts[-_URL_PARTS_KEPT:] if is_url else parts[-1:]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(kept)).strip("._-")[-64:]
    return slug or "backbone"


def unique_model_names(backbone_names: Sequence[str]) -> list[str]:
    """One name per backbone, never clashing with each other, the baseline or a fine-tuned variant."""
    taken = {SCRATCH_MODEL}
    names: list[str] = []
    for backbone in backbone_names:
        base = model_slug(backbone)
        name, counter = base, 2
        while name in taken or name + FINE_TUNED_SUFFIX in taken or name.endswith(FINE_TUNED_SUFFIX):
            name = f"{base}_{counter}"
            counter += 1
        taken.update((name, name + FINE_TUNED_SUFFIX))
        names.append(name)
    return names
