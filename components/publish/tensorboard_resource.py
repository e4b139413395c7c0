"""The Kubeflow ``Tensorboard`` resource that serves the published logs in a Kubeflow profile namespace.

Kubeflow's Tensorboard controller starts a TensorBoard server for a resource like::

    apiVersion: tensorboard.kubeflow.org/v1alpha1
    kind: Tensorboard
    metadata: {name: hubpipe, namespace: kubeflow-user}
    spec: {logspath: pvc://<pvc_name>/<pvc_path>}     # or gs://bucket/root/tensorboard

and lists it on the Tensorboards page of the Kubeflow dashboard. ``pvc_path`` is the logs folder as seen
inside the volume: with the publish root at the top of the volume it is ``tensorboard``.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from hubpipe.pipeline.core.config import PublishConfig

API_VERSION = "tensorboard.kubeflow.org/v1alpha1"
KIND = "Tensorboard"


@dataclass(frozen=True)
class TensorboardResource:
    logspath: str | None  # None: the logs are not where a cluster can read them
    manifest: str  # YAML, empty when logspath is None
    reason: str  # why there is no resource, or ""


def logs_path_for_cluster(config: PublishConfig, logs_dir: str) -> str | None:
    """``pvc://NAME/PATH`` when a PVC is configured, the ``gs://`` logs folder, or None for a local one."""
    if config.pvc_name.strip():
        return f"pvc://{config.pvc_name.strip()}/{config.pvc_path.strip().strip('/')}".rstrip("/")
    if logs_dir.startswith("gs://"):
        return logs_dir
    return None


def tensorboard_resource(config: PublishConfig, logs_dir: str) -> TensorboardResource:
    logspath = logs_path_for_cluster(config, logs_dir)
    if logspath is None:
        reason = (
            "the publish root is not on a volume or bucket a cluster can read: set publish.pvc_name or a gs:// root"
        )
        return TensorboardResource(None, "", reason)
    manifest = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": config.tensorboard_name,
            "namespace": config.namespace,
            "labels": {"app.kubernetes.io/part-of": "hubpipe"},
        },
        "spec": {"logspath": logspath},
    }
    return TensorboardResource(logspath, yaml.safe_dump(manifest, sort_keys=False), "")


def viewing_hints(resource_file: str | None, no_resource_reason: str, namespace: str, logs_dir: str) -> list[str]:
    """How to look at the published logs, one line each."""
    hints = [f"locally: hubpipe tensorboard --logdir {logs_dir}"]
    if resource_file:
        hints.append(
            f"on Kubeflow: kubectl apply -f <publish stage folder>/{resource_file}, then open Tensorboards in the "
            f"Kubeflow dashboard (namespace {namespace})"
        )
    else:
        hints.append(f"on Kubeflow: no Tensorboard resource written; {no_resource_reason}")
    return hints
