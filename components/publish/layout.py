"""The publish stage's artifact folder (the publish root itself is :mod:`hubpipe.components.common.publish_root`).

::

    publish.json        what was published where: the root, this run's logs, the model version, LATEST, hints
    tensorboard.yaml    the Kubeflow Tensorboard resource, when a cluster can read the logs
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hubpipe.components.common import publish_root

STAGE = "publish"
PUBLISH_FILE = "publish.json"
RESOURCE_FILE = "tensorboard.yaml"


def artifacts(with_resource: bool) -> dict[str, str]:
    """The stage's artifacts (name -> path in its folder), as its manifest lists them."""
    return {"publish": PUBLISH_FILE, **({"tensorboard_resource": RESOURCE_FILE} if with_resource else {})}


def publication_links(record: Mapping[str, Any]) -> dict[str, Any]:
    """run.json's ``links`` as far as publish.json (``record``) tells them: the publish root, this run's
    TensorBoard logs, the published version's folder (None when this run published none) and the evaluation id.

    run.json's links are these plus the run folder and the MLflow run (the local runner), or these alone (a
    Kubeflow run, which has no run folder); tracking reads them for run folders whose run.json has none yet."""
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
