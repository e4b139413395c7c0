"""The train stage as a Kubeflow Pipelines component: a thin shell over :mod:`.executor`.

Outputs: ``model`` (the stage folder: one model per backbone plus the from-scratch baseline, TensorBoard logs,
summary.json), an HTML report, a Markdown summary, test accuracies as metrics, and the KFP UI metadata that
opens TensorBoard on the training logs. This is the task that asks for a GPU.
"""

from collections.abc import Callable

#: The output that holds the stage folder; downstream components take it as an input of this name.
OUTPUT = "model"


def component_function() -> Callable[..., None]:
    """The lightweight component function (kfp is imported here, so that importing this module stays light)."""
    from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

    def train(
        *,
        config: str,
        backbones: list,
        epochs: int,
        batch_size: int,
        learning_rate: float,
        fine_tune_layers: int,
        data_source: str,
        percent: float,
        examples: Input[Dataset],
        validation: Input[Artifact],
        model: Output[Model],
        report: Output[HTML],
        summary: Output[Markdown],
        metrics: Output[Metrics],
        mlpipeline_ui_metadata: Output[Artifact],
    ) -> None:
        """Train: one classifier head per backbone on cached feature vectors, and the from-scratch baseline.

        Args:
            examples: The ingest stage's examples.
            validation: The validate stage's folder (training does not start on rejected data).
            model: models/<name>/ (serving model, head, predictions), logs/<name>/ (TensorBoard), summary.json.
            report: The models and their test accuracy as a page.
            summary: Status and key results.
            metrics: Test accuracy and training time per model.
            mlpipeline_ui_metadata: Opens TensorBoard on the training logs from the KFP UI.
        """
        from hubpipe.pipeline.kubeflow.launcher import launch
        from hubpipe.pipeline.kubeflow.ui_outputs import html_report, log_metrics, tensorboard_viewer, write_summary

        launch(
            "train",
            config,
            {
                "backbones": backbones,
                "epochs": epochs,
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "fine_tune_layers": fine_tune_layers,
                "data_source": data_source,
                "percent": percent,
            },
            output=model,
            inputs={"ingest": examples, "validate": validation},
            fill=[
                (report, html_report("Training", "summary")),
                (summary, write_summary),
                (metrics, log_metrics),
                (mlpipeline_ui_metadata, tensorboard_viewer("logs")),
            ],
        )

    return train
