"""The train stage as Kubeflow Pipelines components: thin shells over :mod:`.executor`.

The stage fans out (see :mod:`hubpipe.pipeline.kubeflow.fan_out`): one ``train`` task per backbone and one for
the from-scratch baseline, each the ordinary train stage narrowed to its part by its ``part`` input (these are
the tasks that ask for a GPU), then one ``train-collect`` task that merges their folders into the folder a
single train stage writes (:mod:`.merge`), through the execution core, so that its manifest is a train
stage's. Every one of them has the outputs: ``model`` (the stage folder: models/<name>/, logs/<name>/,
summary.json), an HTML report, a Markdown summary, test accuracies as metrics, and the KFP UI metadata that
opens TensorBoard on the training logs. Downstream components take the collect task's ``model``.
"""

from collections.abc import Callable, Sequence
from typing import Any

#: The output that holds the stage folder; downstream components take it as an input of this name.
OUTPUT = "model"
#: The train component's input that says which part of the fanned-out stage a task trains.
PART_INPUT = "part"
#: Settings fixed when compiling (one task per backbone): no pipeline parameter of this name exists.
COMPILED_PARAMETERS = ("backbones",)
#: The name of the collect component (its tasks are called ``train-collect`` in the compiled pipeline).
COLLECT = "train_collect"


def fan_out(config: Any) -> list[tuple[str, dict[str, Any]]]:
    """The train tasks of ``config``: each one's name (the model it trains) and its constant inputs."""
    from hubpipe.pipeline.kubeflow.fan_out import train_parts

    return [(part.model, {PART_INPUT: part.argument(config.train)}) for part in train_parts(config.train)]


def outputs_filled(report: Any, summary: Any, metrics: Any, mlpipeline_ui_metadata: Any) -> list[tuple[Any, Any]]:
    """The fillers of the outputs the KFP UI shows, the same for a train task and the collect task."""
    from hubpipe.pipeline.kubeflow.ui_outputs import html_report, log_metrics, tensorboard_viewer, write_summary

    return [
        (report, html_report("Training", "summary")),
        (summary, write_summary),
        (metrics, log_metrics),
        (mlpipeline_ui_metadata, tensorboard_viewer("logs")),
    ]


def component_function() -> Callable[..., None]:
    """The lightweight component function (kfp is imported here, so that importing this module stays light)."""
    from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

    def train(
        *,
        config: str,
        part: dict,
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
        """Train one part: a classifier head on one backbone's cached feature vectors, or the from-scratch baseline.

        Args:
            part: What this task trains (fixed when compiling: one task per backbone, one for the baseline).
            examples: The ingest stage's examples.
            validation: The validate stage's folder (training does not start on rejected data).
            model: models/<name>/ (serving model, head, predictions), logs/<name>/ (TensorBoard), summary.json.
            report: The model and its test accuracy as a page.
            summary: Status and key results.
            metrics: Test accuracy and training time.
            mlpipeline_ui_metadata: Opens TensorBoard on the training logs from the KFP UI.
        """
        from hubpipe.components.train.kfp_component import outputs_filled
        from hubpipe.pipeline.kubeflow.fan_out import narrow_to_part
        from hubpipe.pipeline.kubeflow.launcher import launch

        launch(
            "train",
            config,
            {
                "epochs": epochs,
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "fine_tune_layers": fine_tune_layers,
                "data_source": data_source,
                "percent": percent,
            },
            output=model,
            inputs={"ingest": examples, "validate": validation},
            fill=outputs_filled(report, summary, metrics, mlpipeline_ui_metadata),
            narrow=lambda resolved: narrow_to_part(resolved, part),
        )

    return train


_COLLECT_SOURCE = '''\
def {name}(
    *,
    config: str,
{inputs}
    model: Output[Model],
    report: Output[HTML],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    mlpipeline_ui_metadata: Output[Artifact],
) -> None:
    """Train, collected: the folders of the train tasks merged into the one folder a train stage writes.

    Args:
        config: The whole hubpipe configuration.
{docs}
        model: models/<name>/ and logs/<name>/ of every task, summary.json of them all.
        report: The models and their test accuracy as a page.
        summary: Status and key results.
        metrics: Test accuracy and training time per model.
        mlpipeline_ui_metadata: Opens TensorBoard on the training logs from the KFP UI.
    """
    from hubpipe.components.train.kfp_component import collect

    collect(
        config,
        [{pairs}],
        outputs=(model, report, summary, metrics, mlpipeline_ui_metadata),
    )
'''


def collect_function(parts: Sequence[str]) -> Callable[..., None]:
    """The collect component's function for the train tasks ``parts`` (by name, in training order): one
    ``Input[Model]`` per task, named after it (see :func:`~hubpipe.pipeline.kubeflow.fan_out.define_function`)."""
    import kfp.dsl

    from hubpipe.pipeline.kubeflow.fan_out import define_function, input_names

    named = list(zip(input_names(parts), parts, strict=True))
    source = _COLLECT_SOURCE.format(
        name=COLLECT,
        inputs="\n".join(f"    {name}: Input[Model]," for name, _ in named),
        docs="\n".join(f"        {name}: The folder of the train task of {part}." for name, part in named),
        pairs=", ".join(f"({part!r}, {name})" for name, part in named),
    )
    return define_function(COLLECT, source, {**vars(kfp.dsl), "__name__": __name__})


def collect(config: dict, parts: Sequence[tuple[str, Any]], outputs: tuple[Any, Any, Any, Any, Any]) -> None:
    """Runs in the collect task: merges the parts' folders (``(name, artifact)`` in training order) into
    ``outputs[0]`` through the execution core, as the train stage, and fills the other outputs."""
    import dataclasses

    from hubpipe.pipeline.kubeflow.launcher import launch, registered_stage

    train = registered_stage("train")
    spec = dataclasses.replace(
        train,
        executor=f"{train.executor.partition(':')[0]}:collect",
        upstream=tuple(name for name, _ in parts),
        external_inputs="",
        preflight="",
    )
    model, *shown = outputs
    launch(spec, config, {}, output=model, inputs=dict(parts), fill=outputs_filled(*shown))
