"""Runs one stage inside a Kubeflow task: KFP artifacts in, the stage's executor, typed KFP outputs out.

Every ``components/<stage>/kfp_component.py`` calls :func:`launch` from its component function. The launcher
builds the same :class:`~hubpipe.pipeline.stage.StageContext` the local runner builds, with the KFP artifact
folders as ``inputs`` and ``output_dir``, and writes the stage's ``manifest.json`` (the same fields as a local
run). Then "fillers" fill the component's other typed outputs from the finished stage: a Markdown summary
(:func:`write_summary`), the key results as Metrics (:func:`log_metrics`), an executor's report copied
(:func:`copy_file`) or rendered as HTML (:func:`html_report`), the KFP UI metadata that opens TensorBoard on
the logs (:func:`tensorboard_viewer`), or a stage's own (e.g. its confusion matrix).

A stage whose policy rejects the data (``StageResult.rejected``) still succeeds here, so that KFP keeps its
artifacts (the validation report shows why); the next stage refuses to start on a rejected input and fails
with exit code 3, which stops the run. Artifacts are used through ``.path``, ``.uri``, ``.metadata``,
``.log_metric`` and ``.log_confusion_matrix`` only; this module does not import kfp.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.common.text import codepoints
from hubpipe.pipeline import __version__
from hubpipe.pipeline.artifacts import read_json, stable_hash, write_json_atomic
from hubpipe.pipeline.config import PipelineConfig, section_dict
from hubpipe.pipeline.errors import DataRejected, HubpipeError, StageError
from hubpipe.pipeline.kubeflow.parameters import resolve_config
from hubpipe.pipeline.runner import MANIFEST, code_version
from hubpipe.pipeline.runtime import cache_root
from hubpipe.pipeline.stage import StageContext, StageResult, StageSpec

LOG = logging.getLogger("hubpipe.kubeflow")

Artifact = Any  # a kfp.dsl artifact: .path, .uri, .metadata (and log_metric / log_confusion_matrix)


def registered_stage(name: str) -> StageSpec:
    from hubpipe.pipeline.stages import registered_stages

    for spec in registered_stages():
        if spec.name == name:
            return spec
    raise StageError(f"stage {name} is not registered in hubpipe.pipeline.stages")


@dataclass(frozen=True)
class Launched:
    """A stage that has run in this task: what the output fillers read."""

    spec: StageSpec
    result: StageResult
    manifest: dict[str, Any]
    output_dir: Path
    output_uri: str
    inputs: Mapping[str, Path]

    def artifact_path(self, name: str) -> Path | None:
        """The executor's artifact ``name`` as a path, or None when the stage did not produce it."""
        relative = self.result.artifacts.get(name)
        return self.output_dir / relative if relative and (self.output_dir / relative).exists() else None

    def artifact_uri(self, name: str) -> str | None:
        relative = self.result.artifacts.get(name)
        return f"{self.output_uri.rstrip('/')}/{relative}" if relative else None


#: Fills one typed output (Markdown, HTML, Metrics, ClassificationMetrics, UI metadata) from a finished stage.
Filler = Callable[[Launched, Artifact], None]


def launch(
    stage: str | StageSpec,
    config: Mapping[str, Any],
    parameters: Mapping[str, Any],
    *,
    output: Artifact,
    inputs: Mapping[str, Artifact] | None = None,
    fill: Sequence[tuple[Artifact, Filler]] = (),
    keep_previous: bool = False,
) -> None:
    """Runs ``stage`` (a registered stage's name, or a spec) as a KFP task and fills its outputs.

    ``config`` and ``parameters`` are the pipeline parameters the component received; ``output`` receives the
    stage's folder; ``inputs`` maps upstream stage names to their folder artifacts; ``fill`` pairs each other
    output with the function that fills it (:func:`write_summary`, :func:`log_metrics`, :func:`copy_file`,
    :func:`html_report`, :func:`tensorboard_viewer` or a stage's own). With ``keep_previous`` the stage folder
    is also kept in hubpipe's cache (a volume on a cluster) and given to the next run as ``previous_dir``,
    as the local runner does. A user-facing error ends the process with one line and the hubpipe exit code.
    """
    from hubpipe.pipeline.cli import configure_logging

    configure_logging(debug=False)
    try:
        spec = registered_stage(stage) if isinstance(stage, str) else stage
        resolved = resolve_config(config, parameters)
        input_dirs = {name: Path(artifact.path) for name, artifact in (inputs or {}).items()}
        output_dir = Path(output.path)
        previous = previous_location(spec.name) if keep_previous else None
        previous_dir = previous if previous is not None and (previous / MANIFEST).is_file() else None
        result, manifest = run_stage(spec, resolved, input_dirs, output_dir, previous_dir)
        if previous is not None:
            keep_as_previous(output_dir, previous)
        output.metadata.update(scalar_results(result.results))
        output.metadata["hubpipe_version"] = __version__
        launched = Launched(spec, result, manifest, output_dir, output.uri, input_dirs)
        for artifact, filler in fill:
            Path(artifact.path).parent.mkdir(parents=True, exist_ok=True)
            filler(launched, artifact)
    except HubpipeError as exc:
        LOG.error("error: %s", exc)
        raise SystemExit(exc.exit_code) from None


def run_stage(
    spec: StageSpec,
    config: PipelineConfig,
    inputs: Mapping[str, Path],
    output_dir: Path,
    previous_dir: Path | None = None,
) -> tuple[StageResult, dict[str, Any]]:
    """Runs the executor of ``spec`` into ``output_dir`` and writes its manifest; returns both.

    ``inputs`` must hold a committed stage folder (with manifest.json) for every upstream stage; an input
    that a policy rejected stops here with :class:`DataRejected`.
    """
    upstream = check_inputs(spec, inputs)
    output_dir.mkdir(parents=True, exist_ok=True)
    for leftover in output_dir.iterdir():  # a retried attempt starts from an empty folder
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()
    fingerprint_inputs = {
        "stage": spec.name,
        "parameters": section_dict(config, *spec.sections),
        "code": code_version(spec.code),
        "external": {},
        "upstream": {name: manifest.get("fingerprint", "") for name, manifest in upstream.items()},
    }
    context = StageContext(
        name=spec.name,
        config=config,
        inputs=dict(inputs),
        output_dir=output_dir,
        cache_dir=cache_root() / "stages",
        previous_dir=previous_dir,
        beam_args=tuple(config.runner.beam_args),
    )
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    LOG.info("[%s] running", spec.name)
    result = spec.load_executor()(context)
    if not isinstance(result, StageResult):
        raise StageError(f"stage {spec.name} returned {type(result).__name__}, not a StageResult")
    manifest = {
        "stage": spec.name,
        "fingerprint": stable_hash(fingerprint_inputs),
        "inputs": fingerprint_inputs,
        "started": started_at,
        "duration_s": round(time.monotonic() - started, 3),
        "artifacts": dict(result.artifacts),
        "results": result.results,
        "rejected": result.rejected,
    }
    write_json_atomic(output_dir / MANIFEST, manifest)
    if result.rejected:
        LOG.warning("[%s] rejected: %s (the next stage will not start)", spec.name, result.rejected)
    LOG.info("[%s] done in %.1f s", spec.name, manifest["duration_s"])
    return result, manifest


def previous_location(stage: str) -> Path:
    """Where tasks of ``stage`` keep their folder for the next run: hubpipe's cache, a volume on a cluster."""
    return cache_root() / "kubeflow" / "previous" / stage


def keep_as_previous(output_dir: Path, location: Path) -> None:
    """Replaces ``location`` by a copy of ``output_dir`` (copied aside, then swapped in with renames)."""
    location.parent.mkdir(parents=True, exist_ok=True)
    staging = location.with_name(f".{location.name}.tmp-{os.getpid()}")
    retired = location.with_name(f".{location.name}.old-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(output_dir, staging)
    if location.exists():
        os.replace(location, retired)
    os.replace(staging, location)
    shutil.rmtree(retired, ignore_errors=True)


def check_inputs(spec: StageSpec, inputs: Mapping[str, Path]) -> dict[str, dict[str, Any]]:
    """The manifests of the upstream folders; raises if one is missing, incomplete or rejected."""
    missing = [name for name in spec.upstream if name not in inputs]
    if missing:
        raise StageError(f"stage {spec.name} needs the output of {', '.join(missing)}")
    manifests: dict[str, dict[str, Any]] = {}
    for name in spec.upstream:
        try:
            manifests[name] = read_json(inputs[name] / MANIFEST)
        except (OSError, ValueError):
            raise StageError(
                f"input {name} of stage {spec.name} at {inputs[name]} has no readable {MANIFEST}"
            ) from None
        if manifests[name].get("rejected"):
            raise DataRejected(
                f"stage {name} rejected the data, so {spec.name} does not run: {manifests[name]['rejected']}"
            )
    return manifests


def flatten(results: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested results as dotted keys, e.g. ``{"accuracy": {"b0": 0.9}}`` -> ``{"accuracy.b0": 0.9}``."""
    flat: dict[str, Any] = {}
    for key, value in results.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def scalar_results(results: Mapping[str, Any]) -> dict[str, Any]:
    """The flattened results that are strings, numbers or booleans (what artifact metadata can hold)."""
    return {key: value for key, value in flatten(results).items() if isinstance(value, (str, int, float, bool))}


def log_metrics(stage: Launched, metrics: Artifact) -> None:
    """Every numeric (or boolean, as 0/1) key result as a scalar metric."""
    for name, value in flatten(stage.result.results).items():
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
    results = flatten(manifest.get("results", {}))
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
        sections = [f"<h1>{html.escape(title)}</h1>"]
        for name in names:
            path = stage.artifact_path(name)
            sections.append(f"<h2>{html.escape(name)}</h2>")
            sections.append(_html_of(path) if path is not None else "<p>not produced by this run</p>")
        head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{_CSS}</style>"
        page = f"<!DOCTYPE html>\n<html><head>{head}</head>\n<body>{''.join(sections)}</body></html>\n"
        Path(artifact.path).write_text(page, encoding="utf-8")

    return fill


_CSS = "body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"


def _html_of(path: Path) -> str:
    if path.is_dir():
        images = sorted(path.rglob("*.png"))
        return (
            "".join(
                f"<figure><img src='data:image/png;base64,{base64.b64encode(image.read_bytes()).decode()}'>"
                f"<figcaption>{html.escape(str(image.relative_to(path)))}</figcaption></figure>"
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
    return f"<pre>{html.escape(text)}</pre>"


def _html_table(data: Any) -> str:
    """Nested JSON as HTML: a list of objects as one table, an object as a two-column table."""
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        columns = list(dict.fromkeys(key for row in data for key in row))
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{_html_table(row.get(c, ''))}</td>" for c in columns) + "</tr>" for row in data
        )
        return f"<table><tr>{head}</tr>{body}</table>"
    if isinstance(data, dict):
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_html_table(v)}</td></tr>" for k, v in data.items())
        return f"<table>{rows}</table>" if rows else "<p>none</p>"
    if isinstance(data, list):
        return ", ".join(_html_table(item) for item in data) if data else "<p>none</p>"
    return html.escape(str(data))


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
