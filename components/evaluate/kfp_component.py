"""The evaluate stage as a Kubeflow Pipelines component: a thin shell over :mod:`.executor`.

Outputs: ``evaluation`` (the stage folder: blessing.json, per-model metrics, images, TensorBoard logs), the
confusion matrix of the blessed (else the most accurate) candidate as ``ClassificationMetrics``, an HTML report
with the blessing decision and the pictures, a Markdown summary, accuracies as metrics, and the KFP UI
metadata that opens TensorBoard on the evaluation logs.
"""

import json
import logging
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger("hubpipe.kubeflow")

#: The output that holds the stage folder; downstream components take it as an input of this name.
OUTPUT = "evaluation"


def log_confusion_matrix(stage: Any, artifact: Any) -> None:
    """Fills ``artifact`` with the confusion matrix of the blessed model, else of the most accurate candidate."""
    from hubpipe.components.common.features import read_labels
    from hubpipe.components.evaluate.layout import read_blessing

    metrics_dir = stage.artifact_path("metrics")
    name = read_blessing(stage.output_dir).featured
    metrics_file = metrics_dir / f"{name}.json" if metrics_dir and name else None
    if metrics_file is None or not metrics_file.is_file():
        LOG.warning("[evaluate] no metrics of a candidate; the confusion matrix stays empty")
        return
    matrix = json.loads(metrics_file.read_text(encoding="utf-8"))["confusion_matrix"]
    artifact.metadata["model"] = name
    artifact.log_confusion_matrix(read_labels(stage.inputs["ingest"]), matrix)


def component_function() -> Callable[..., None]:
    """The lightweight component function (kfp is imported here, so that importing this module stays light)."""
    from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

    def evaluate(
        *,
        config: str,
        min_accuracy: float,
        min_margin_over_baseline: float,
        max_drop_vs_blessed: float,
        gate_rule: str,
        publish_root: str,
        examples: Input[Dataset],
        model: Input[Model],
        evaluation: Output[Artifact],
        confusion_matrix: Output[ClassificationMetrics],
        report: Output[HTML],
        summary: Output[Markdown],
        metrics: Output[Metrics],
        mlpipeline_ui_metadata: Output[Artifact],
    ) -> None:
        """Evaluate: scores every model on the test split, compares with the baselines, blesses or not.

        Args:
            examples: The ingest stage's examples (the test split).
            model: The train stage's models and their test predictions.
            evaluation: blessing.json, BLESSED or NOT_BLESSED, metrics/, images/, tensorboard/.
            confusion_matrix: Of the blessed model, else of the most accurate candidate.
            report: The decision, every check and the pictures (confusion matrices, misclassified images).
            summary: Status and key results.
            metrics: Accuracy and macro-F1 per model; checks passed and failed.
            mlpipeline_ui_metadata: Opens TensorBoard on the evaluation logs from the KFP UI.
        """
        from hubpipe.components.evaluate.kfp_component import log_confusion_matrix
        from hubpipe.pipeline.kubeflow.launcher import launch
        from hubpipe.pipeline.kubeflow.ui_outputs import html_report, log_metrics, tensorboard_viewer, write_summary

        launch(
            "evaluate",
            config,
            {
                "min_accuracy": min_accuracy,
                "min_margin_over_baseline": min_margin_over_baseline,
                "max_drop_vs_blessed": max_drop_vs_blessed,
                "gate_rule": gate_rule,
                "publish_root": publish_root,
            },
            output=evaluation,
            inputs={"ingest": examples, "train": model},
            fill=[
                (confusion_matrix, log_confusion_matrix),
                (report, html_report("Evaluation", "blessing", "images")),
                (summary, write_summary),
                (metrics, log_metrics),
                (mlpipeline_ui_metadata, tensorboard_viewer("tensorboard")),
            ],
        )

    return evaluate
