"""Merging train folders: the folders of a train stage split into parts (on Kubeflow, one task per backbone and
one for the from-scratch baseline) become the one folder a train stage writes when it trains every model itself,
so that evaluate and publish read it unchanged.

Each part is a complete train folder (see :mod:`.layout`): ``models/<name>/``, ``logs/<name>/``, the HParams
experiment at the root of ``logs/``, and ``summary.json``. The merged folder holds every part's models and logs,
the root of ``logs/`` of the first part (the experiment declaration is the same in every part), and one
``summary.json`` whose rows follow the parts' order (the order a single train stage trains them in) and whose
best model is the most accurate row (the first of equals, as when one stage trains them all).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.train.layout import LOGS_DIR, MODELS_DIR, SUMMARY_FILE
from hubpipe.pipeline.core.artifacts import read_json_checked, write_json_atomic
from hubpipe.pipeline.core.errors import StageError, UsageError

LOG = logging.getLogger(__name__)

#: What summary.json must hold for a merge: its rows, each with a name and a test accuracy.
SUMMARY_SHAPE = {"models": [{"name": str, "test_accuracy": (int, float)}], "device": str, "precision": str}
#: Key results that are one entry per model, merged by taking every part's entries.
PER_MODEL_RESULTS = (
    "models",
    "feature_extraction_seconds",
    "embeddings_cached",
    "embeddings_recomputed",
    "extraction_engine",
)
#: Key results recomputed from the merged models rather than taken from a part.
BEST_RESULTS = ("best_model", "best_test_accuracy")


@dataclass(frozen=True)
class TrainPart:
    """One part of a split train stage: its name (the model it trains, e.g. ``efficientnet_lite0`` or
    ``scratch_cnn``) and its complete train folder."""

    name: str
    folder: Path


def merge_train_folders(parts: Sequence[TrainPart], output_dir: Path) -> dict[str, Any]:
    """Copies every part's models and logs into the empty folder ``output_dir`` and writes the merged
    ``summary.json``; returns that summary.

    The folder is complete only when the caller marks it so (the execution core writes its manifest last). Two
    parts with a model of the same name, or a part without a readable summary.json, raise a one-line error.
    """
    if not parts:
        raise StageError("there is no train folder to merge")
    summaries = [_read_summary(part) for part in parts]
    owners: dict[str, str] = {}
    for part, summary in zip(parts, summaries, strict=True):
        for row in summary["models"]:
            if row["name"] in owners:
                raise StageError(
                    f"the train parts {owners[row['name']]} and {part.name} both trained a model named {row['name']}"
                )
            owners[row["name"]] = part.name
    for index, (part, summary) in enumerate(zip(parts, summaries, strict=True)):
        LOG.info("collecting %s from %s", ", ".join(row["name"] for row in summary["models"]), part.name)
        _copy_part(part, [row["name"] for row in summary["models"]], output_dir, with_logs_root=index == 0)
    merged = merged_summary([part.name for part in parts], summaries)
    write_json_atomic(output_dir / SUMMARY_FILE, merged)
    return merged


def _read_summary(part: TrainPart) -> dict[str, Any]:
    path = part.folder / SUMMARY_FILE
    if not path.is_file():
        raise StageError(f"the train part {part.name} has no {SUMMARY_FILE} in {part.folder}")
    try:
        return read_json_checked(path, SUMMARY_SHAPE)
    except UsageError as exc:
        raise StageError(f"the train part {part.name}: {exc}") from None


def _copy_part(part: TrainPart, models: Sequence[str], output_dir: Path, *, with_logs_root: bool) -> None:
    """Copies the folders of ``models`` (models/ and logs/) and, ``with_logs_root``, the files at the root of logs/."""
    for source, target in _copies(part, models, output_dir, with_logs_root=with_logs_root):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
        except OSError as exc:
            raise StageError(f"copying {source} to {target} failed: {exc.strerror or exc}") from None


def _copies(
    part: TrainPart, models: Sequence[str], output_dir: Path, *, with_logs_root: bool
) -> list[tuple[Path, Path]]:
    """What to copy where: each model's folder (which must be there) and its logs (when written)."""
    pairs: list[tuple[Path, Path]] = []
    for name in models:
        model, logs = part.folder / MODELS_DIR / name, part.folder / LOGS_DIR / name
        if not model.is_dir():
            raise StageError(f"the train part {part.name} lists the model {name} but has no folder {model}")
        pairs.append((model, output_dir / MODELS_DIR / name))
        if logs.is_dir():
            pairs.append((logs, output_dir / LOGS_DIR / name))
    if with_logs_root:
        root_files = sorted(path for path in (part.folder / LOGS_DIR).glob("*") if path.is_file())
        pairs += [(path, output_dir / LOGS_DIR / path.name) for path in root_files]
    return pairs


def merged_summary(names: Sequence[str], summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One summary.json of the parts' summaries: their rows in order, the most accurate row as the best model."""
    rows = [row for summary in summaries for row in summary["models"]]
    best = max(rows, key=lambda row: row["test_accuracy"])
    merged = {"best_model": best["name"]}
    for key in ("device", "precision"):
        merged[key] = agreed_or_each(names, [summary.get(key) for summary in summaries])
    merged["models"] = rows
    return merged


def merged_results(names: Sequence[str], results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The key results of the merged stage from those of its parts (each a train stage's results).

    Per-model entries are united; the best model is recomputed over every model; any other result keeps its
    value when every part agrees, else becomes a mapping from part name to value (e.g. ``device`` when one task
    ran on a GPU and another on a CPU).
    """
    keys = list(dict.fromkeys(key for result in results for key in result))
    merged: dict[str, Any] = {}
    for key in keys:
        if key in PER_MODEL_RESULTS:
            merged[key] = {name: value for result in results for name, value in (result.get(key) or {}).items()}
        elif key not in BEST_RESULTS:
            merged[key] = agreed_or_each(names, [result.get(key) for result in results])
    models = merged.get("models") or {}
    if models:
        best = max(models, key=lambda name: models[name]["test_accuracy"])
        merged = {"best_model": best, "best_test_accuracy": models[best]["test_accuracy"], **merged}
    return merged


def agreed_or_each(names: Sequence[str], values: Sequence[Any]) -> Any:
    """The value every part has, or a mapping from part name to its value when they differ."""
    if all(value == values[0] for value in values):
        return values[0]
    return dict(zip(names, values, strict=True))
