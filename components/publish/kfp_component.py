"""The publish stage as a Kubeflow Pipelines component: a thin shell over :mod:`.executor`.

Outputs: ``publication`` (the stage folder: publish.json and, when the logs are on a volume or bucket, the
Kubeflow Tensorboard resource), an HTML report and a Markdown summary. The published logs and models go to
the publish root (``publish_root``: a path on the mounted volume or a gs:// path). With ``mlflow_uri`` (or
``$MLFLOW_TRACKING_URI`` in the pod) the run is logged to MLflow too (see
:mod:`hubpipe.pipeline.tracking.kubeflow_run`).
"""

from collections.abc import Callable

#: The output that holds the stage folder; downstream components take it as an input of this name.
OUTPUT = "publication"
#: Pipeline parameters this component takes besides those of its stage's settings: tracking and the run name are
#: no stage's settings (they never rerun a stage); the run name names the published logs.
EXTRA_PARAMETERS = ("mlflow_uri", "run_name")


def component_function() -> Callable[..., None]:
    """The lightweight component function (kfp is imported here, so that importing this module stays light)."""
    from kfp.dsl import HTML, Artifact, Input, Markdown, Model, Output

    def publish(
        *,
        config: str,
        publish_root: str,
        mlflow_uri: str,
        run_name: str,
        evaluation: Input[Artifact],
        model: Input[Model],
        publication: Output[Artifact],
        report: Output[HTML],
        summary: Output[Markdown],
    ) -> None:
        """Publish: every model's TensorBoard logs and, if one was blessed, the model, to the publish root.

        Args:
            evaluation: The evaluate stage's folder (the blessing decision and evaluation logs).
            model: The train stage's models and logs.
            publication: publish.json (what was published where) and tensorboard.yaml (Kubeflow Tensorboard).
            report: What was published, as a page.
            summary: Status and key results.
        """
        from hubpipe.pipeline.kubeflow.launcher import launch
        from hubpipe.pipeline.kubeflow.ui_outputs import html_report, write_summary
        from hubpipe.pipeline.tracking.kubeflow_run import track_in_mlflow

        launch(
            "publish",
            config,
            {"publish_root": publish_root, "mlflow_uri": mlflow_uri, "run_name": run_name},
            output=publication,
            inputs={"evaluate": evaluation, "train": model},
            fill=[
                (report, html_report("Publication", "publish", "tensorboard_resource")),
                (summary, write_summary),
                (publication, track_in_mlflow),
            ],
        )

    return publish
