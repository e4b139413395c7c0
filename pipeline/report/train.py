"""The report's models section (the train stage): every model with its test metrics (the accuracy with its 95%
interval) and gate."""

from __future__ import annotations

from hubpipe.components.common.html_parts import escape, table
from hubpipe.components.evaluate.layout import BASELINE, BLESSED, FAILED, PASSED
from hubpipe.components.train import layout as train_layout
from hubpipe.pipeline.report.formatting import not_run, number, pill
from hubpipe.pipeline.run_results import RunFolder

GATE_PILLS = {BLESSED: "ok", BASELINE: "neutral", PASSED: "neutral", FAILED: "bad"}


def models_section(run: RunFolder) -> str:
    if run.stage(train_layout.STAGE) is None:
        return "<h2>Models</h2>" + not_run(train_layout.STAGE, run)
    rows = [
        [
            escape(row["model"]),
            escape(row["kind"] or "?"),
            escape(row["mode"] or "?"),
            escape(row["backbone"] or "-"),
            number(row["accuracy"]),
            _interval(row["accuracy_interval"]),
            number(row["top5_accuracy"]),
            number(row["macro_f1"]),
            number(row["log_loss"]),
            number(row["train_seconds"], 1),
            pill(row["gate"], GATE_PILLS[row["gate"]]),
        ]
        for row in run.model_rows()
    ]
    headers = ["model", "kind", "mode", "backbone", "accuracy", "95% interval", "top-5", "macro-F1", "log loss"]
    headers += ["train s", "gate"]
    return "<h2>Models</h2>" + table(headers, rows, numeric=[4, 5, 6, 7, 8, 9])


def _interval(bounds: object) -> str:
    """A test accuracy's 95% interval ``[low, high]``, "-" when the model was not evaluated."""
    if not isinstance(bounds, list) or len(bounds) != 2:
        return "-"
    return f"[{number(float(bounds[0]))}, {number(float(bounds[1]))}]"
