"""The one reader of a local run folder's results: run.json, the stages' folders and manifests, the blessing and
the models table. The Python API, the run report, tracking and ``hubpipe report`` read a run through it.

A stage's files are found by the names its ``layout`` module publishes; evaluate's decision is its typed
:class:`~hubpipe.components.evaluate.layout.Blessing`. A damaged JSON file is a one-line UsageError naming it.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from hubpipe.components.evaluate import layout as evaluate_layout
from hubpipe.components.evaluate.layout import Blessing, read_blessing
from hubpipe.components.train import layout as train_layout
from hubpipe.pipeline.core.artifacts import read_json_checked
from hubpipe.pipeline.core.execution import MANIFEST, complete_dir
from hubpipe.pipeline.core.locking import run_in_progress
from hubpipe.pipeline.core.run_folder import RUN_FILE
from hubpipe.pipeline.stages import stage_names

#: What is read from run.json (see :func:`~hubpipe.pipeline.core.artifacts.read_json_checked`).
RUN_SHAPE = {"stages": [dict], "process": dict, "tracking": dict, "links": dict}


class RunFolder:
    """A run folder's run.json and stage folders, read when first asked for."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @cached_property
    def run(self) -> dict[str, Any]:
        """run.json (empty when the pipeline has not run in the folder)."""
        return read_json_checked(self.root / RUN_FILE, RUN_SHAPE, {})

    @property
    def name(self) -> str:
        """The run name (run.json ``name``: the name of its published logs), else the folder's name."""
        return str(self.run.get("name") or self.root.name)

    @property
    def links(self) -> dict[str, str]:
        """Where the run's other records are (run.json ``links``: run folder, publish root, TensorBoard logs,
        published version, evaluation id, MLflow run); empty before the first run."""
        return {str(key): str(value) for key, value in (self.run.get("links") or {}).items() if value}

    def has_results(self) -> bool:
        """True when the folder holds run.json or a stage's folder with its manifest."""
        return (self.root / RUN_FILE).is_file() or any((self.root / s / MANIFEST).is_file() for s in stage_names())

    def stage(self, name: str) -> Path | None:
        """The stage's folder when it is complete (has its manifest), else None."""
        return complete_dir(self.root / name)

    @property
    def status(self) -> str:
        """run.json's status, except that a run whose process is gone is "interrupted", not "running"."""
        status = str(self.run.get("status", "unknown"))
        if status == "running" and not run_in_progress(self.root):
            return "interrupted"
        return status

    def records(self) -> list[dict[str, Any]]:
        """run.json's stage records, in run order."""
        return list(self.run.get("stages") or [])

    def record(self, name: str) -> dict[str, Any]:
        """The stage's record in run.json (empty when it has none)."""
        return next((s for s in self.records() if s.get("name") == name), {})

    @cached_property
    def blessing(self) -> Blessing:
        """evaluate's decision (nothing blessed when evaluate has not run)."""
        return read_blessing(self.stage(evaluate_layout.STAGE))

    def model_rows(self) -> list[dict[str, Any]]:
        """One row per trained model: its kind, backbone, test metrics (from evaluate when it ran), training
        seconds and gate (``blessed``, ``passed``, ``failed`` or ``baseline``); the report's and the API's table."""
        train = self.stage(train_layout.STAGE)
        if train is None:
            return []
        evaluate = self.stage(evaluate_layout.STAGE)
        return [
            _model_row(info_path, evaluate, self.blessing)
            for info_path in sorted((train / train_layout.MODELS_DIR).glob(f"*/{train_layout.MODEL_FILE}"))
        ]


def _model_row(info_path: Path, evaluate: Path | None, blessing: Blessing) -> dict[str, Any]:
    info = read_json_checked(info_path, dict, {})
    name = str(info.get("name") or info_path.parent.name)
    metrics = read_json_checked(evaluate / evaluate_layout.METRICS_DIR / f"{name}.json", dict, {}) if evaluate else {}
    backbone = info.get("backbone") if isinstance(info.get("backbone"), dict) else {}
    return {
        "model": name,
        "kind": info.get("kind"),
        "mode": info.get("mode"),
        "backbone": backbone.get("name"),
        "accuracy": metrics.get("accuracy", info.get("test_accuracy")),
        "accuracy_interval": metrics.get("accuracy_interval"),  # 95% Wilson [low, high], when evaluated
        "top5_accuracy": metrics.get("top5_accuracy"),
        "macro_f1": metrics.get("macro_f1"),
        "log_loss": metrics.get("log_loss"),
        "train_seconds": info.get("train_seconds"),
        "gate": blessing.gate(name),
    }
