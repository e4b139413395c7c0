"""The links between a pipeline run's places: run.json's ``links`` as publish.json tells them, and an MLflow run's page.

Kept apart from :mod:`.run_tracking` and :mod:`.mlflow_logging` (which imports mlflow) so that both, and the
Kubeflow publish task (:mod:`.kubeflow_run`), read them from one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hubpipe.components.common import publish_root


def run_url(uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page on an http(s) tracking server; "" for any other URI (a database or a local store)."""
    if not uri.lower().startswith(("http://", "https://")):
        return ""
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def publication_links(record: Mapping[str, Any]) -> dict[str, Any]:
    """run.json's ``links`` as far as publish.json (``record``) tells them: the publish root, this run's
    TensorBoard logs, the published version's folder (None when this run published none) and the evaluation id.

    For run folders whose run.json has no ``links`` yet, and for a Kubeflow run, which has no run folder."""
    root, version = record.get("root"), record.get("version")
    if "version_dir" in record:
        version_dir = record["version_dir"]
    else:  # publish.json of an earlier hubpipe: the folder publish gives a version
        version_dir = publish_root.version_dir(str(root), str(version)) if root and version else None
    links = {
        "publish_root": root,
        "tensorboard_logs": record.get("logs_dir"),
        "published_version": version_dir,
        "evaluation_id": record.get("run_id"),
    }
    return {key: value for key, value in links.items() if value is not None or key == "published_version"}
