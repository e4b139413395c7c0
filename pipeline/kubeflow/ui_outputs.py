"""The typed outputs a Kubeflow task shows in the KFP UI, filled from a finished stage: a Markdown summary
(:func:`write_summary`), the key results as Metrics (:func:`log_metrics`), an executor's report copied
(:func:`copy_file`) or rendered as one HTML page (:func:`html_report`, with the stylesheet of every hubpipe
page, :mod:`hubpipe.components.common.html_parts`), and the UI metadata that opens TensorBoard on the logs
(:func:`tensorboard_viewer`). A stage's component may add its own filler (e.g. evaluate's confusion matrix).

Artifacts are used through ``.path``, ``.uri``, ``.metadata``, ``.log_metric`` and ``.log_confusion_matrix``
only; this module does not import kfp.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.common.html_parts import escape, page
from hubpipe.components.common.text import codepoints
from hubpipe.pipeline.core.artifacts import dotted
from hubpipe.pipeline.core.config import PipelineConfig
from hubpipe.pipeline.core.stage import StageResult, StageSpec
from hubpipe.pipeline.core.version import __version__

LOG = logging.getLogger("hubpipe.kubeflow")

Artifact = Any  # a kfp.dsl artifact: .path, .uri, .metadata (and log_metric / log_confusion_matrix)


@dataclass(frozen=True)
class Launched:
    """A stage that has run in this task: what the output fillers read."""

    spec: StageSpec
    result: StageResult
    manifest: dict[str, Any]
    output_dir: Path
    output_uri: str
    inputs: Mapping[str, Path]
    config: PipelineConfig  # what the stage ran with

    def artifact_path(self, name: str) -> Path | None:
        """The executor's artifact ``name`` as a path, or None when the stage did not produce it."""
        relative = self.result.artifacts.get(name)
        return self.output_dir / relative if relative and (self.output_dir / relative).exists() else None

    def artifact_uri(self, name: str) -> str | None:
        relative = self.result.artifacts.get(name)
        return f"{self.output_uri.rstrip('/')}/{relative}" if relative else None


#: Fills one typed output (Markdown, HTML, Metrics, ClassificationMetrics, UI metadata) from a finished stage.
Filler = Callable[[Launched, Artifact], None]


def scalar_results(results: Mapping[str, Any]) -> dict[str, Any]:
    """The flattened results that are strings, numbers or booleans (what artifact metadata can hold)."""
    return {key: value for key, value in dotted(results).items() if isinstance(value, (str, int, float, bool))}


def log_metrics(stage: Launched, metrics: Artifact) -> None:
    """Every numeric (or boolean, as 0/1) key result as a scalar metric."""
    for name, value in dotted(stage.result.results).items():
        if isinstance(value, (int, float)):
            metrics.log_metric(name, float(value))


def copy_file(name: str) -> Filler:
    """A filler that copies the executor's artifact ``name`` (a file or folder); a note when there is none."""

    def fill(stage: Launched, artifact: Artifact) -> None:
        source, target = stage.artifact_path(name), Path(artifact.path)
        if source is not None and source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif source is not None:
            shutil.copyfile(source, target)
        else:
            LOG.warning("[%s] produced no %s; its output holds a note instead", stage.spec.name, name)
            target.write_text(f"<p>This run of {stage.spec.name} produced no {name}.</p>\n", encoding="utf-8")

    return fill


#: Characters that start Markdown inline syntax (emphasis, code, links, images, tables, strike-through).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()|~!#])")


def _literal(text: str) -> str:
    """``text`` as literal Markdown: no HTML, links, emphasis, table cells or reordering survive."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(codepoints(text), quote=False))


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _literal(text if len(text) <= 200 else text[:197] + "...")


def write_summary(stage: Launched, summary: Artifact) -> None:
    """A Markdown summary of the stage: status, key results and where its artifacts are."""
    manifest = stage.manifest
    status = f"**rejected**: {_literal(manifest['rejected'])}" if manifest.get("rejected") else "succeeded"
    lines = [f"# {stage.spec.name}", "", f"{status} in {manifest['duration_s']:.1f} s (hubpipe {__version__})", ""]
    results = dotted(manifest.get("results", {}))
    if results:
        lines += [
            "| result | value |",
            "|---|---|",
            *(f"| {_cell(key)} | {_cell(v)} |" for key, v in results.items()),
            "",
        ]
    if manifest.get("artifacts"):
        lines += ["| artifact | location |", "|---|---|"]
        lines += [f"| {name} | `{stage.artifact_uri(name)}` |" for name in manifest["artifacts"]]
    Path(summary.path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def html_report(title: str, *names: str) -> Filler:
    """A filler that renders the executor's artifacts ``names`` as one self-contained HTML page.

    JSON files become tables, folders their PNG images (embedded) and other files preformatted text.
    """

    def fill(stage: Launched, artifact: Artifact) -> None:
        sections = [f"<h1>{escape(title)}</h1>"]
        for name in names:
            path = stage.artifact_path(name)
            sections.append(f"<h2>{escape(name)}</h2>")
            sections.append(_html_of(path) if path is not None else "<p>not produced by this run</p>")
        Path(artifact.path).write_text(page(title, "".join(sections)), encoding="utf-8")

    return fill


def _html_of(path: Path) -> str:
    if path.is_dir():
        images = sorted(path.rglob("*.png"))
        return (
            "".join(
                f"<figure><img src='data:image/png;base64,{base64.b64encode(image.read_bytes()).decode()}'>"
                f"<figcaption>{escape(str(image.relative_to(path)))}</figcaption></figure>"
                for image in images
            )
            or "<p>no images</p>"
        )
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".json":
        try:
            return _html_table(json.loads(text))
        except ValueError:
            pass
    return f"<pre>{escape(text)}</pre>"


def _html_table(data: Any) -> str:
    """Nested JSON as HTML: a list of objects as one table, an object as a two-column table."""
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        columns = list(dict.fromkeys(key for row in data for key in row))
        head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{_html_table(row.get(c, ''))}</td>" for c in columns) + "</tr>" for row in data
        )
        return f"<table><tr>{head}</tr>{body}</table>"
    if isinstance(data, dict):
        rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{_html_table(v)}</td></tr>" for k, v in data.items())
        return f"<table>{rows}</table>" if rows else "<p>none</p>"
    if isinstance(data, list):
        return ", ".join(_html_table(item) for item in data) if data else "<p>none</p>"
    return escape(str(data))


def tensorboard_viewer(name: str) -> Filler:
    """A filler for ``mlpipeline_ui_metadata``: the KFP UI's TensorBoard viewer on the executor's logs ``name``."""

    def fill(stage: Launched, artifact: Artifact) -> None:
        uri = stage.artifact_uri(name) if stage.artifact_path(name) is not None else None
        outputs = [{"type": "tensorboard", "source": uri}] if uri else []
        if not uri:
            LOG.warning("[%s] produced no %s for TensorBoard", stage.spec.name, name)
        Path(artifact.path).write_text(
            json.dumps({"version": 1, "outputs": outputs}, indent=2) + "\n", encoding="utf-8"
        )

    return fill
