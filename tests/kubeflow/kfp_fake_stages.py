"""Toy stages and their KFP shells, to test the Kubeflow layer without the real stages' cost.

The component functions run in a subprocess (kfp.local) that imports this module from PYTHONPATH.
"""

import json
from types import SimpleNamespace

from hubpipe.pipeline.core.stage import StageContext, StageResult, StageSpec

MODULE = "kfp_fake_stages"
CODE = ("hubpipe.pipeline.core.stage",)


def ingest(ctx: StageContext) -> StageResult:
    (ctx.output_dir / "examples").mkdir()
    (ctx.output_dir / "examples" / "train.txt").write_text(ctx.config.data.source)
    (ctx.output_dir / "report.html").write_text("<h1>ingest report</h1>")
    results = {"images": {"train": 8, "test": 4}, "source": ctx.config.data.source, "percent": ctx.config.data.percent}
    return StageResult(results=results, artifacts={"examples": "examples", "report": "report.html"})


def validate(ctx: StageContext) -> StageResult:
    source = (ctx.inputs["ingest"] / "examples" / "train.txt").read_text()
    (ctx.output_dir / "anomalies.html").write_text(f"<p>anomalies of {source}</p>")
    rejected = "class 'x' has no images" if source == "reject-me" else None
    return StageResult(
        results={"anomalies": int(bool(rejected))}, artifacts={"report": "anomalies.html"}, rejected=rejected
    )


def train(ctx: StageContext) -> StageResult:
    logs = ctx.output_dir / "logs"
    logs.mkdir()
    (logs / "events.out").write_text("events")
    (ctx.output_dir / "model.txt").write_text(",".join(ctx.config.train.backbones))
    matrix = {"labels": ["a", "b"], "matrix": [[3, 1], [0, 4]]}
    (ctx.output_dir / "confusion.json").write_text(json.dumps(matrix))
    results = {"accuracy": 0.875, "epochs": ctx.config.train.epochs, "blessed": True}
    artifacts = {"model": "model.txt", "tensorboard": "logs", "confusion_matrix": "confusion.json"}
    return StageResult(results=results, artifacts=artifacts)


SPECS = {
    "ingest": StageSpec("ingest", f"{MODULE}:ingest", sections=("data",), code=CODE),
    "validate": StageSpec("validate", f"{MODULE}:validate", upstream=("ingest",), sections=("validate",), code=CODE),
    "train": StageSpec("train", f"{MODULE}:train", upstream=("ingest", "validate"), sections=("train",), code=CODE),
}


def log_confusion_matrix(stage, artifact) -> None:
    """A stage's own filler: the confusion matrix from its JSON artifact."""
    data = json.loads(stage.artifact_path("confusion_matrix").read_text())
    artifact.log_confusion_matrix(data["labels"], data["matrix"])


def ingest_function():
    from kfp.dsl import HTML, Dataset, Markdown, Metrics, Output

    def fake_ingest(
        *,
        config: str,
        data_source: str,
        percent: float,
        examples: Output[Dataset],
        report: Output[HTML],
        summary: Output[Markdown],
        metrics: Output[Metrics],
    ):
        """Fake ingest.

        Args:
            config: The whole configuration.
            data_source: Where the images are.
        """
        import kfp_fake_stages

        from hubpipe.pipeline.kubeflow.launcher import launch
        from hubpipe.pipeline.kubeflow.ui_outputs import copy_file, log_metrics, write_summary

        launch(
            kfp_fake_stages.SPECS["ingest"],
            config,
            {"data_source": data_source, "percent": percent},
            output=examples,
            fill=[(report, copy_file("report")), (summary, write_summary), (metrics, log_metrics)],
        )

    return fake_ingest


def validate_function():
    from kfp.dsl import HTML, Artifact, Dataset, Input, Output

    def fake_validate(
        *,
        config: str,
        validation_policy: str,
        examples: Input[Dataset],
        validation: Output[Artifact],
        report: Output[HTML],
    ):
        """Fake validate."""
        import kfp_fake_stages

        from hubpipe.pipeline.kubeflow.launcher import launch
        from hubpipe.pipeline.kubeflow.ui_outputs import html_report

        launch(
            kfp_fake_stages.SPECS["validate"],
            config,
            {"validation_policy": validation_policy},
            output=validation,
            inputs={"ingest": examples},
            fill=[(report, html_report("Validation", "report"))],
        )

    return fake_validate


def train_function():
    from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

    def fake_train(
        *,
        config: str,
        backbones: list,
        epochs: int,
        examples: Input[Dataset],
        validation: Input[Artifact],
        model: Output[Model],
        metrics: Output[Metrics],
        confusion_matrix: Output[ClassificationMetrics],
        mlpipeline_ui_metadata: Output[Artifact],
    ):
        """Fake train."""
        import kfp_fake_stages

        from hubpipe.pipeline.kubeflow.launcher import launch
        from hubpipe.pipeline.kubeflow.ui_outputs import log_metrics, tensorboard_viewer

        launch(
            kfp_fake_stages.SPECS["train"],
            config,
            {"backbones": backbones, "epochs": epochs},
            output=model,
            inputs={"ingest": examples, "validate": validation},
            fill=[
                (metrics, log_metrics),
                (confusion_matrix, kfp_fake_stages.log_confusion_matrix),
                (mlpipeline_ui_metadata, tensorboard_viewer("tensorboard")),
            ],
        )

    return fake_train


SHELLS = {
    "ingest": SimpleNamespace(OUTPUT="examples", component_function=ingest_function),
    "validate": SimpleNamespace(OUTPUT="validation", component_function=validate_function),
    "train": SimpleNamespace(OUTPUT="model", component_function=train_function),
}
