"""The ingest stage as a Kubeflow Pipelines component: a thin shell over :mod:`.executor`.

Outputs: ``examples`` (the stage folder: TFRecord shards, labels.txt, quarantine and duplicate lists), an HTML
report, a Markdown summary and the key counts as metrics.
"""

from collections.abc import Callable

#: The output that holds the stage folder; downstream components take it as an input of this name.
OUTPUT = "examples"


def component_function() -> Callable[..., None]:
    """The lightweight component function (kfp is imported here, so that importing this module stays light)."""
    from kfp.dsl import HTML, Dataset, Markdown, Metrics, Output

    def ingest(
        *,
        config: str,
        data_source: str,
        percent: float,
        examples: Output[Dataset],
        report: Output[HTML],
        summary: Output[Markdown],
        metrics: Output[Metrics],
    ) -> None:
        """Ingest: reads the images of the data source, checks them and writes train/test TFRecord examples.

        Args:
            examples: TFRecord shards per split, labels.txt, quarantine.json, duplicates.json, summary.json.
            report: The summary, quarantined files and duplicates as a page.
            summary: Status and key results.
            metrics: Counts of files seen, examples written, quarantined and duplicates.
        """
        from hubpipe.pipeline.kubeflow.launcher import launch
        from hubpipe.pipeline.kubeflow.ui_outputs import html_report, log_metrics, write_summary

        launch(
            "ingest",
            config,
            {"data_source": data_source, "percent": percent},
            output=examples,
            fill=[
                (report, html_report("Ingest", "summary", "quarantine", "duplicates")),
                (summary, write_summary),
                (metrics, log_metrics),
            ],
        )

    return ingest
