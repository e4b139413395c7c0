"""MLflow tracking of a Kubeflow pipeline run, done by its publish task.

A Kubeflow run has no run folder: every task's folder is an artifact of its own. The publish task, the last one,
receives the train and evaluate folders; :func:`track_in_mlflow` lays them out as a run folder (symbolic links
in a temporary folder named after the evaluation id), with a ``run.json`` made from the stages' manifests and from
the task's own publish.json (the run name, else the evaluation id; the links to the publish root, this run's
TensorBoard logs and the published version), and hands it to
:func:`hubpipe.pipeline.tracking.run_tracking.track_run`, which the local runner calls on its run folder: the same
parent run, child runs, metrics, dataset, pictures and registered model. The server is the pipeline parameter
``mlflow_uri`` (``track.mlflow_uri``; empty: ``$MLFLOW_TRACKING_URI`` of the task's pod, else no tracking).

Each execution of the publish task logs the run once; a publish task that Kubeflow takes from its cache logs
nothing again. The outcome goes to the publication artifact's metadata (``tracking``, ``mlflow_run_id``,
``tracking_error``), and tracking never fails the task.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hubpipe.components.evaluate import layout as evaluate_layout
from hubpipe.components.evaluate.layout import read_blessing
from hubpipe.components.publish.layout import PUBLISH_FILE, publication_links
from hubpipe.pipeline.core.artifacts import read_json, write_json_atomic
from hubpipe.pipeline.core.execution import MANIFEST
from hubpipe.pipeline.core.run_folder import RUN_FILE
from hubpipe.pipeline.kubeflow.ui_outputs import Launched
from hubpipe.pipeline.tracking.run_tracking import TRACKED_STAGES, track_run


def run_view(stage: Launched, folder: Path) -> Path:
    """A run folder under ``folder`` whose stage folders link to the task's artifacts, with its run.json."""
    evaluation = read_blessing(stage.inputs[evaluate_layout.STAGE]).evaluation_id or "kubeflow-run"
    view = folder / str(evaluation)
    view.mkdir(parents=True)
    manifests = {name: read_json(stage.inputs[name] / MANIFEST) for name in TRACKED_STAGES}
    manifests[stage.spec.name] = stage.manifest
    records = []
    for name, manifest in manifests.items():
        source = stage.inputs.get(name, stage.output_dir)
        (view / name).symlink_to(source.resolve(), target_is_directory=True)
        records.append(
            {
                "name": name,
                "status": "ran",
                "fingerprint": manifest.get("fingerprint", ""),
                "duration_s": manifest.get("duration_s", 0.0),
            }
        )
    publication = stage.output_dir / PUBLISH_FILE  # written by the stage, before the fillers run
    record = read_json(publication) if publication.is_file() else {}
    identity = {"name": record.get("run_name") or evaluation, "links": publication_links(record)}
    write_json_atomic(view / RUN_FILE, {"status": "succeeded", **identity, "stages": records})
    return view


def track_in_mlflow(stage: Launched, artifact: Any) -> None:
    """A filler of the publish task: logs the run to MLflow (see the module) and records the outcome on
    ``artifact``."""
    missing = [name for name in TRACKED_STAGES if name not in stage.inputs]
    if missing:
        raise ValueError(f"MLflow tracking needs the {missing[0]} folder as an input of the {stage.spec.name} task")
    with tempfile.TemporaryDirectory(prefix="hubpipe-tracking-") as folder:
        entry = track_run(stage.config, run_view(stage, Path(folder)), succeeded=True)
    if entry is None:
        return
    artifact.metadata["tracking"] = entry["status"]
    if entry.get("run_id"):
        artifact.metadata["mlflow_run_id"] = entry["run_id"]
    if entry.get("error"):
        artifact.metadata["tracking_error"] = entry["error"]
