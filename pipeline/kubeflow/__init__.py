"""The pipeline on Kubeflow Pipelines (KFP v2): the same stage executors as the local runner, as KFP components.

Layers, from the cluster inwards:

* :mod:`.runner` compiles the pipeline to YAML and submits it to a KFP host (the ``compile`` and ``submit``
  commands call it); it owns the environment decisions: image, accelerators, volumes, credentials.
* :mod:`.pipeline` holds the one factory, :func:`~.pipeline.create_pipeline`, that wires one task per
  registered stage (:mod:`hubpipe.pipeline.stages`) with typed artifacts, resources, retries and caching.
* Each stage's thin KFP shell lives beside its executor as ``components/<stage>/kfp_component.py``: a typed
  component function whose body calls :func:`.launcher.launch`.
* :mod:`.launcher` runs inside the container: it builds a :class:`~hubpipe.pipeline.core.stage.StageContext` from
  KFP artifact folders, calls the stage's executor and fills the typed outputs (reports, metrics, summary).

Nothing here imports kfp at module import time.
"""
