"""Experiment tracking in MLflow, from a finished (or failed) run folder.

With ``track.mlflow_uri`` (or ``$MLFLOW_TRACKING_URI``) set, :func:`track_run` logs one parent MLflow run per
pipeline run into ``track.experiment``, named by the run name (run.json's ``name``, else the run folder's name):
the resolved configuration (flattened, as parameters), the stages' status and seconds, the blessing, each gate
check of each candidate (``gate.<candidate>.<check>`` with its 95% interval ``.low``/``.high``, its ``.p_value``
and its rule as a tag), tags for the run name, the evaluation id and each link of run.json's ``links``
(``hubpipe.link.<key>``: run folder, publish root, TensorBoard logs, published version), the dataset as an MLflow
dataset input (named by the data source's description, with the ingest's content digest and the source), the run
report (HTML) and the blessed serving model as an MLflow model, registered as ``track.registered_model`` with a
description and tags (run name, backbone, test accuracy and its 95% interval, evaluation id, links) and the
alias ``track.alias``; and one child run per model, spanning the real start and end of its training (model.json's
``train_started``/``train_finished``): its hyperparameters, its per-epoch train/validation metrics (timestamped
within that span), its test metrics with the accuracy's 95% interval, the dataset input, and its confusion-matrix
and misclassified-images pictures. run.json's ``tracking`` entry keeps the run's id, its experiment's id and, for
an http(s) server, the run's page (``run_url``).

Tracking reads only the run folder after the stages have run, so it is called from one place (the local
runner's :func:`~hubpipe.pipeline.local_runner.run_pipeline`, and the Kubeflow publish component) and never changes a
stage's fingerprint. ``DIR/tracking.json`` remembers which stage outputs (by fingerprint) went to which server,
so a cached stage is not logged twice. Tracking never fails a run: a server that is down or an error while
logging gives one warning line and ``tracking: {status: failed, error}`` in run.json, which the report shows.

A plain path or a ``file://`` URI names a local store without a server: MLflow 3's file-store backend refuses
to start ("in maintenance mode"), so hubpipe keeps the runs in a SQLite database in that folder
(``<dir>/mlflow.db``, the backend MLflow recommends instead) and the artifacts beside it (``<dir>/artifacts``,
the artifact location of the experiments it creates there).
"""

from __future__ import annotations

import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.evaluate import layout as evaluate_layout
from hubpipe.components.train import layout as train_layout
from hubpipe.pipeline.core.artifacts import dotted, read_json, write_json_atomic
from hubpipe.pipeline.core.config import PipelineConfig, to_dict
from hubpipe.pipeline.run_results import RunFolder

LOG = logging.getLogger("hubpipe.tracking")

TRACKING_FILE = "tracking.json"
#: The stages whose outputs are logged; each is logged once per fingerprint and server.
TRACKED_STAGES = (train_layout.STAGE, evaluate_layout.STAGE)
PROBE_TIMEOUT_S = 5.0
INSTALL_HINT = "pip install -c constraints.txt -e '.[mlflow]'"
#: A local tracking folder's database and artifact folder (``track.mlflow_uri`` a path or ``file://`` URI).
LOCAL_DATABASE = "mlflow.db"
LOCAL_ARTIFACTS = "artifacts"
#: Tracking URIs MLflow knows without a scheme (Databricks workspaces), which are not paths.
_NAMED_URIS = ("databricks", "databricks-uc", "uc")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class TrackingFailed(Exception):
    """Tracking could not be done; the message is the one line the user sees."""


@dataclass(frozen=True)
class TrackingTarget:
    """Where to log: the server URI, the experiment and the registered model name (empty: none)."""

    uri: str
    experiment: str
    registered_model: str
    local_dir: str = ""  # a local tracking folder (made when missing); empty for servers and database URIs
    artifact_location: str = ""  # of the experiments created there; empty: the server's default
    alias: str = ""  # given to the registered version of a blessed model; empty: none


def local_tracking_dir(uri: str) -> Path | None:
    """The folder that a plain path or a ``file://`` URI names, absolute; None for any other URI."""
    if uri.lower().startswith("file:"):
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(uri).path)).expanduser().resolve()
    if _SCHEME.match(uri) or uri.lower() in _NAMED_URIS:
        return None
    return Path(uri).expanduser().resolve()


def tracking_target(config: PipelineConfig) -> TrackingTarget | None:
    """The configured tracking target, ``$MLFLOW_TRACKING_URI`` when the setting is empty; None: no tracking.

    A local folder becomes the SQLite store in it, with its artifacts beside the database (see above).
    """
    uri = config.track.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        return None
    folder = local_tracking_dir(uri)
    if folder is None:
        return TrackingTarget(uri, config.track.experiment, config.track.registered_model, alias=config.track.alias)
    return TrackingTarget(
        f"sqlite:///{folder / LOCAL_DATABASE}",
        config.track.experiment,
        config.track.registered_model,
        local_dir=str(folder),
        artifact_location=(folder / LOCAL_ARTIFACTS).as_uri(),
        alias=config.track.alias,
    )


def flatten(data: Mapping[str, Any]) -> dict[str, str]:
    """Nested settings as MLflow parameters: dotted names, string values (lists joined with commas)."""
    return {
        name: ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        for name, value in dotted(data).items()
    }


def stages_to_log(run_file: Mapping[str, Any], state: Mapping[str, Any], target: TrackingTarget) -> list[str]:
    """The tracked stages that have outputs (ran or cached) not yet logged to this server and experiment."""
    logged = _logged(state, target)
    return [
        record["name"]
        for record in run_file.get("stages", [])
        if record.get("name") in TRACKED_STAGES
        and record.get("status") in ("ran", "cached")
        and logged.get(record["name"]) != record.get("fingerprint")
    ]


def _logged(state: Mapping[str, Any], target: TrackingTarget) -> dict[str, str]:
    """Stage -> fingerprint already logged to ``target`` (nothing when the state is for another target)."""
    same = (state.get("uri"), state.get("experiment")) == (target.uri, target.experiment)
    return dict(state.get("logged", {})) if same else {}


def probe(uri: str) -> None:
    """Raises TrackingFailed when an http(s) tracking server does not answer its health check."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S) as response:
            response.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise TrackingFailed(f"the MLflow server at {uri} does not answer ({reason})") from None


def track_run(config: PipelineConfig, output_dir: Path, succeeded: bool) -> dict[str, Any] | None:
    """Logs the run folder to MLflow if tracking is configured; returns run.json's ``tracking`` entry
    (None without tracking). Never raises for a tracking problem: it logs one warning line instead."""
    target = tracking_target(config)
    if target is None:
        return None
    entry: dict[str, Any] = {"uri": target.uri, "experiment": target.experiment}
    state_file = Path(output_dir) / TRACKING_FILE
    state = read_json(state_file) if state_file.is_file() else {}
    run_file = RunFolder(Path(output_dir)).run
    pending = stages_to_log(run_file, state, target)
    if not pending:
        ids = {key: state[key] for key in ("experiment_id", "run_url") if key in state}
        return {**entry, "status": "up_to_date", "run_id": state.get("run_id", ""), **ids}
    started = time.monotonic()
    try:
        probe(target.uri)
        from hubpipe.pipeline.tracking.mlflow_logging import log_run

        params = flatten(to_dict(config))
        logged = log_run(target, Path(output_dir), run_file, params, pending=pending, succeeded=succeeded)
    except TrackingFailed as exc:
        return _failed(entry, str(exc))
    except ImportError as exc:
        return _failed(entry, f"mlflow is not installed ({exc.name}): {INSTALL_HINT}")
    except Exception as exc:  # tracking is not worth losing a training run for
        return _failed(entry, f"{type(exc).__name__}: {exc}")
    done = {record["name"]: record["fingerprint"] for record in run_file["stages"] if record["name"] in pending}
    logged_before = _logged(state, target)
    ids = {key: logged[key] for key in ("run_id", "experiment_id", "run_url") if key in logged}
    write_json_atomic(state_file, {**entry, **ids, "logged": {**logged_before, **done}})
    LOG.info("tracking: logged to %s (run %s) in %.1f s", target.uri, logged["run_id"], time.monotonic() - started)
    return {**entry, "status": "logged", **logged}


def _failed(entry: dict[str, Any], error: str) -> dict[str, Any]:
    LOG.warning("MLflow tracking failed: %s; the run goes on without tracking", error)
    return {**entry, "status": "failed", "error": error}
