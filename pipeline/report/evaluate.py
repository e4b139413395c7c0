"""The report's blessing section (the evaluate stage): the decision and its reasons, the comparison with the last
blessed model, every check, and the confusion matrices and misclassified images (the featured model's open)."""

from __future__ import annotations

from pathlib import Path

from hubpipe.components.common.html_parts import escape, table
from hubpipe.components.evaluate import layout as evaluate_layout
from hubpipe.components.evaluate.layout import Blessing
from hubpipe.pipeline.report.formatting import image, not_run, number, pill
from hubpipe.pipeline.run_results import RunFolder


def blessing_section(run: RunFolder) -> str:
    evaluate = run.stage(evaluate_layout.STAGE)
    if evaluate is None:
        return "<h2>Blessing</h2>" + not_run(evaluate_layout.STAGE, run)
    blessing = run.blessing
    blessed = blessing.blessed
    verdict = pill(f"blessed: {blessed}", "ok") if blessed else pill("not blessed", "bad")
    reasons = "".join(f"<li>{escape(r)}</li>" for r in blessing.reasons)
    reference = blessing.reference
    if reference.metrics:
        accuracy = number(reference.metrics.get("accuracy"))
        how = escape(reference.method)
        compared = f"last blessed model {escape(reference.version)} (scored via {how}): accuracy {accuracy}"
    else:
        compared = f"last blessed model: {escape(reference.skip_reason or 'none')}"
    thresholds = ", ".join(f"{escape(k)} = {escape(v)}" for k, v in blessing.thresholds.items())
    evaluation_id = escape(blessing.evaluation_id or "?")
    return (
        f"<h2>Blessing</h2><p>{verdict} <span class='muted'>evaluation {evaluation_id}</span></p>"
        f"<ul>{reasons}</ul><p>Compared with the {compared}.<br>Thresholds: {thresholds}</p>"
        + _checks_table(blessing)
        + _pictures(evaluate, blessing)
    )


def _checks_table(blessing: Blessing) -> str:
    """Every check with its point estimate, its 95% interval, the McNemar p-value of paired checks and the rule
    that decided it."""
    rows = []
    for check in blessing.checks:
        result = {True: pill("passed", "ok"), False: pill("failed", "bad")}.get(
            check.passed, pill("skipped", "neutral")
        )
        rows.append(
            [
                escape(check.candidate),
                escape(check.name),
                number(check.value),
                escape(check.interval) if check.interval is not None else "-",
                number(check.p_value, 3),
                number(check.threshold),
                escape(check.rule or "-"),
                result,
                escape(check.detail),
            ]
        )
    headers = ["candidate", "check", "value", "95% interval", "McNemar p", "threshold", "rule", "result", "detail"]
    return table(headers, rows, numeric=[2, 3, 4, 5])


def _pictures(evaluate: Path, blessing: Blessing) -> str:
    folders = sorted(p for p in (evaluate / evaluate_layout.IMAGES_DIR).glob("*") if p.is_dir())
    first = blessing.featured
    parts = []
    for folder in sorted(folders, key=lambda f: (f.name != first, f.name)):
        images = "".join(image(p, f"{folder.name} {p.stem}") for p in sorted(folder.glob("*.png")))
        state = " open" if folder.name == first else ""
        parts.append(f"<details{state}><summary>{escape(folder.name)}</summary>{images}</details>")
    return "<h3>Confusion matrices and misclassified test images</h3>" + "".join(parts) if parts else ""
