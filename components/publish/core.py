"""The publish core: a run's TensorBoard logs always, its blessed model as a new version, LATEST moved last.

Inputs are the train stage's folder (``models/<name>/``, ``logs/<name>/``) and the evaluate stage's folder
(``blessing.json``, ``metrics/``, ``tensorboard/``). The run's logs go under its name (:mod:`.run_names`), its
model version is named by the evaluation id, so publishing the same evaluation twice writes the same folders.
See :mod:`hubpipe.components.common.publish_root` for the publish root, :mod:`.tensorboard_resource` for the
Tensorboard resource. Artifacts in the output folder: ``publish.json`` and, when a cluster can read the logs,
``tensorboard.yaml``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.common import publish_root, storage
from hubpipe.components.evaluate import layout as evaluate_layout
from hubpipe.components.evaluate.layout import BLESSING_FILE, METRICS_DIR, TENSORBOARD_DIR, Blessing
from hubpipe.components.publish import run_names
from hubpipe.components.publish.layout import PUBLISH_FILE, RESOURCE_FILE
from hubpipe.components.publish.tensorboard_resource import tensorboard_resource, viewing_hints
from hubpipe.components.train.layout import LOGS_DIR as TRAIN_LOGS
from hubpipe.components.train.layout import MODELS_DIR as TRAIN_MODELS
from hubpipe.pipeline.core.artifacts import read_json, write_json_atomic, write_text_atomic
from hubpipe.pipeline.core.config import PublishConfig
from hubpipe.pipeline.core.crashpoints import crash_point
from hubpipe.pipeline.core.errors import PublishConflict, StageError, UsageError

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishRequest:
    train_dir: Path
    evaluate_dir: Path
    output_dir: Path
    root: str  # resolved publish root
    config: PublishConfig
    run_name: str = ""  # run.name; empty: run_names.default_name


@dataclass(frozen=True)
class Publication:
    root: str
    run_id: str  # the evaluation id
    run_name: str  # the name of this run's logs folder and HParams sessions
    logs_dir: str  # this run's logs
    all_logs_dir: str  # every run's logs: what TensorBoard should be started on
    version: str | None  # the version this publish created, if any
    version_dir: str | None  # the blessed model's version folder (created now or before), if any
    latest: str | None  # LATEST after this publish
    model: str | None  # the blessed model, if any
    note: str  # what happened to the model, in words
    tensorboard_resource: str | None  # file name in the output folder, when written
    hints: tuple[str, ...]

    def results(self) -> dict[str, Any]:
        """Key results for run.json."""
        return {
            "run_name": self.run_name,
            "evaluation_id": self.run_id,
            "root": self.root,
            "published_version": self.version,
            "version_dir": self.version_dir,
            "latest": self.latest,
            "logs": self.logs_dir,
            "tensorboard_resource": self.tensorboard_resource,
            "note": self.note,
        }


def evaluated_blessing(evaluate_dir: Path) -> Blessing:
    """The evaluate stage's decision; a StageError when it is unreadable or has no evaluation id."""
    try:
        blessing = evaluate_layout.read_blessing(Path(evaluate_dir))
    except UsageError as exc:
        raise StageError(f"cannot read {BLESSING_FILE} of the evaluate stage: {exc}") from None
    if not blessing.evaluation_id:
        raise StageError(f"{BLESSING_FILE} of the evaluate stage has no evaluation_id")
    return blessing


def _train_runs(train_dir: Path) -> list[Path]:
    """The run folders under train's ``logs/<model>/`` (``train/``, ``validation/``)."""
    logs = Path(train_dir) / TRAIN_LOGS
    if not logs.is_dir():
        return []
    return sorted(run for model in logs.iterdir() if model.is_dir() for run in model.iterdir() if run.is_dir())


def publish_logs(train_dir: Path, evaluate_dir: Path, run_logs: str, run_name: str) -> int:
    """Every model's training curves and the evaluation's TensorBoard tree, into one run folder, its HParams
    sessions named after ``run_name``.

    The files directly in train's ``logs/`` and ``logs/<model>/`` (its HParams experiment and sessions) are
    left out: the evaluation's tree holds them again, with this run's test metrics.
    """
    copied = 0
    for run in _train_runs(train_dir):
        copied += storage.copy_tree(run, storage.join(run_logs, run.parent.name, run.name))
    evaluation_logs = Path(evaluate_dir) / TENSORBOARD_DIR
    if evaluation_logs.is_dir():
        copied += storage.copy_tree(evaluation_logs, run_logs)
        with tempfile.TemporaryDirectory(prefix="hubpipe-sessions-") as folder:
            run_names.renamed_sessions(evaluation_logs, run_name, Path(folder))
            storage.copy_tree(Path(folder), run_logs)  # over the evaluation's copies, same file names
    return copied


def _version_record(
    blessing: Blessing, blessed: evaluate_layout.BlessedModel, run_logs: str, run_name: str
) -> dict[str, Any]:
    return {
        "version": blessing.evaluation_id,
        "run_name": run_name,
        "model": blessed.name,
        "model_key": blessed.model_key,
        "accuracy": blessed.accuracy,
        "macro_f1": blessed.macro_f1,
        "reference": blessing.reference.version,
        "published": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "logs": run_logs,
    }


def publish_version(
    request: PublishRequest, blessing: Blessing, blessed: evaluate_layout.BlessedModel, run_logs: str, run_name: str
) -> str:
    """Copies the blessed model under a temporary name, renames it to its version, then writes version.json.

    An interruption at any point leaves at most a temporary folder or a version without ``version.json``,
    which readers ignore and the next publish replaces. LATEST is the caller's to move.
    """
    version, model = blessing.evaluation_id, blessed.name
    source = Path(request.train_dir) / TRAIN_MODELS / model
    if not source.is_dir():
        raise StageError(f"the blessed model {model} is missing from the train stage's folder {source.parent}")
    final = publish_root.version_dir(request.root, version)
    storage.remove_tree(final)  # an incomplete folder of an interrupted publish (complete ones are not replaced)
    tmp = publish_root.version_dir(request.root, f"{publish_root.TMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
    try:
        storage.copy_tree(source, tmp, on_file=lambda _name: crash_point("publish.in_version_copy"))
        storage.copy_tree(Path(request.evaluate_dir) / METRICS_DIR, storage.join(tmp, METRICS_DIR))
        storage.write_text_atomic(storage.join(tmp, BLESSING_FILE), json.dumps(blessing.record, indent=2) + "\n")
        storage.rename(tmp, final)
    except BaseException:
        storage.remove_tree(tmp)
        raise
    crash_point("publish.after_version_dir")
    record = json.dumps(_version_record(blessing, blessed, run_logs, run_name), indent=2) + "\n"
    storage.write_text_atomic(storage.join(final, publish_root.VERSION_FILE), record)
    return version


@dataclass(frozen=True)
class ModelOutcome:
    """What publish did with the blessed model."""

    version: str | None  # the version this publish made LATEST, if any
    version_dir: str | None  # the blessed model's version folder (published now or before), if any
    note: str  # in words


def _publish_model(request: PublishRequest, blessing: Blessing, run_logs: str, run_name: str) -> ModelOutcome:
    """Publishes the blessed model and moves LATEST to it: a compare-and-swap under the root's lock.

    LATEST moves only while it still names what the evaluation compared with; otherwise another run published
    meanwhile, and :class:`PublishConflict` says so (nothing is blessed; a rerun re-evaluates). A version that
    is complete but not LATEST yet (a run killed in between) gets LATEST now.
    """
    blessed = blessing.blessed_model
    if blessed is None:
        return ModelOutcome(None, None, "not blessed: no model published, LATEST unchanged")
    with publish_root.locked(request.root):
        current = publish_root.read_latest_id(request.root)
        latest = publish_root.read_version(request.root, current) if current else None
        if latest is not None and latest.model_key == blessed.model_key:
            return ModelOutcome(None, latest.path, f"{blessed.name} is already the latest version ({latest.version})")
        expected = blessing.reference.latest_seen
        if current != expected:
            raise PublishConflict(
                f"lost a race: LATEST of {request.root} moved from {expected or 'nothing'} to {current or 'nothing'}"
                f" after this run's evaluation; {blessed.name} is not blessed, rerun to evaluate against {current}"
            )
        version = blessing.evaluation_id
        if publish_root.read_version(request.root, version) is None:
            publish_version(request, blessing, blessed, run_logs, run_name)
            note = f"{blessed.name} published as version {version}"
        else:
            note = f"{blessed.name} was published as version {version} before; LATEST moved to it now"
        crash_point("publish.before_latest")
        storage.write_text_atomic(publish_root.latest_path(request.root), version + "\n")
    return ModelOutcome(version, publish_root.version_dir(request.root, version), note)


def publish(request: PublishRequest) -> Publication:
    """Publishes the logs, then the blessed model; writes publish.json and the Tensorboard resource."""
    blessing = evaluated_blessing(request.evaluate_dir)
    run_id = blessing.evaluation_id
    wanted = request.run_name or run_names.default_name(request.config.experiment, run_id)
    with publish_root.locked(request.root):
        run_name = run_names.claim(request.root, wanted, run_id)
    run_logs = publish_root.logs_dir(request.root, run_name)
    files = publish_logs(request.train_dir, request.evaluate_dir, run_logs, run_name)
    LOG.info("publish: %d log files of run %s to %s", files, run_name, run_logs)
    model = _publish_model(request, blessing, run_logs, run_name)
    LOG.info("publish: %s", model.note)
    all_logs = publish_root.logs_dir(request.root)
    resource = tensorboard_resource(request.config, all_logs)
    resource_file = None
    if resource.logspath:
        write_text_atomic(Path(request.output_dir) / RESOURCE_FILE, resource.manifest)
        resource_file = RESOURCE_FILE
    hints = viewing_hints(resource_file, resource.reason, request.config.namespace, all_logs)
    publication = Publication(
        root=request.root,
        run_id=run_id,
        run_name=run_name,
        logs_dir=run_logs,
        all_logs_dir=all_logs,
        version=model.version,
        version_dir=model.version_dir,
        latest=publish_root.read_latest_id(request.root),
        model=blessing.blessed,
        note=model.note,
        tensorboard_resource=resource_file,
        hints=tuple(hints),
    )
    write_json_atomic(
        Path(request.output_dir) / PUBLISH_FILE, {**asdict(publication), "resource_note": resource.reason}
    )
    for hint in hints:
        LOG.info("view the logs %s", hint)
    return publication


def missing_publication(root: str, previous_record: Path | None) -> list[str]:
    """What a previous publish (its publish.json) put into ``root`` that is no longer there."""
    if previous_record is None:
        return []
    try:
        previous = read_json(previous_record)
    except (OSError, ValueError):
        return []
    if not isinstance(previous, dict) or previous.get("root") != root:
        return []
    missing = []
    if previous.get("logs_dir") and not storage.exists(previous["logs_dir"]):
        missing.append("logs")
    if previous.get("version") and publish_root.read_version(root, previous["version"]) is None:
        missing.append(f"version {previous['version']}")
    return missing
