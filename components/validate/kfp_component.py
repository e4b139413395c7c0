"""The validate stage as a Kubeflow Pipelines component: a thin shell over :mod:`.executor`.

Outputs: ``validation`` (the stage folder: statistics, schema, anomalies), the validation report (HTML), a
Markdown summary and the anomaly counts as metrics. With policy ``fail`` and error anomalies the task still
succeeds, so that the report is kept, and the train task refuses to start (see the launcher). The stage
folder is kept on the cache volume as the next run's baseline for class checks and drift.
"""

from collections.abc import Callable

#: The output that holds the stage folder; downstream components take it as an input of this name.
OUTPUT = "validation"


def component_function() -> Callable[..., None]:
    """The lightweight component function (kfp is imported here, so that importing this module stays light)."""
    from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Output

    def validate(
        *,
        config: str,
        validation_policy: str,
        drift_threshold: float,
        data_source: str,
        percent: float,
        examples: Input[Dataset],
        validation: Output[Artifact],
        report: Output[HTML],
        summary: Output[Markdown],
        metrics: Output[Metrics],
    ) -> None:
        """Validate: TFDV statistics, schema and anomalies of the examples; drift against the previous run.

        Args:
            examples: The ingest stage's examples.
            validation: statistics/, schema.pbtxt, anomalies.json, report.html, baseline.json.
            report: Verdict, anomalies, class balance, quarantine summary and TFDV statistics.
            summary: Status and key results.
            metrics: Anomaly and warning counts.
        """
        from hubpipe.pipeline.kubeflow.launcher import launch
        from hubpipe.pipeline.kubeflow.ui_outputs import copy_file, log_metrics, write_summary

        launch(
            "validate",
            config,
            {
                "validation_policy": validation_policy,
                "drift_threshold": drift_threshold,
                "data_source": data_source,
                "percent": percent,
            },
            output=validation,
            inputs={"ingest": examples},
            fill=[(report, copy_file("report")), (summary, write_summary), (metrics, log_metrics)],
            keep_previous=True,
        )

    return validate
