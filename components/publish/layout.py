"""The publish stage's artifact folder (the publish root itself is :mod:`hubpipe.components.common.publish_root`).

::

    publish.json        what was published where: the root, this run's logs, the model version, LATEST, hints
    tensorboard.yaml    the Kubeflow Tensorboard resource, when a cluster can read the logs
"""

from __future__ import annotations

STAGE = "publish"
PUBLISH_FILE = "publish.json"
RESOURCE_FILE = "tensorboard.yaml"


def artifacts(with_resource: bool) -> dict[str, str]:
    """The stage's artifacts (name -> path in its folder), as its manifest lists them."""
    return {"publish": PUBLISH_FILE, **({"tensorboard_resource": RESOURCE_FILE} if with_resource else {})}
