"""A published run's name: the folder of its TensorBoard logs (``<root>/tensorboard/<run name>/<model>/...``) and
the name of its HParams sessions (``<run name>/<model>``), instead of the evaluation id.

The name is ``run.name`` (the local runner fills in the run folder's name and the date of its first run); without
one (a Kubeflow run given no ``run_name``), ``<publish.experiment or hubpipe>-<the evaluation's date>``. A name
belongs to one evaluation: each run's logs folder holds :data:`MARKER_FILE` (``{"run_name", "evaluation_id"}``;
TensorBoard reads only event files), and a name another evaluation already holds gets the first free suffix
(``-2``, ``-3``, ...). Publishing the same evaluation again under the same name writes the same folder.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from hubpipe.components.common import publish_root, storage
from hubpipe.components.evaluate.layout import RUN_HPARAM

LOG = logging.getLogger(__name__)

MARKER_FILE = "hubpipe-run.json"
DEFAULT_PREFIX = "hubpipe"
MAX_SUFFIX = 1000


def default_name(experiment: str, evaluation_id: str) -> str:
    """``<experiment or hubpipe>-<YYYY-MM-DD>``, the date the evaluation id starts with (``20261206T2059...``)."""
    stamp = evaluation_id[:8]
    date = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}" if stamp.isdigit() else evaluation_id
    return f"{experiment or DEFAULT_PREFIX}-{date}"


def _holder(root: str, name: str) -> str | None:
    """The evaluation id that holds ``name`` in ``root``, "" for a folder without a marker, None when free."""
    folder = publish_root.logs_dir(root, name)
    if not storage.exists(folder):
        return None
    text = storage.read_text(storage.join(folder, MARKER_FILE))
    try:
        return str(json.loads(text).get("evaluation_id", "")) if text else ""
    except (ValueError, AttributeError):
        return ""


def claim(root: str, wanted: str, evaluation_id: str) -> str:
    """The name this evaluation's logs go under: ``wanted``, or ``wanted-N`` when another evaluation holds it;
    the marker is written before the caller copies anything. Call it holding the root's lock."""
    for number in range(1, MAX_SUFFIX):
        name = wanted if number == 1 else f"{wanted}-{number}"
        holder = _holder(root, name)
        if holder is None or holder == evaluation_id:
            marker = {"run_name": name, "evaluation_id": evaluation_id}
            storage.write_text_atomic(
                storage.join(publish_root.logs_dir(root, name), MARKER_FILE), json.dumps(marker, indent=2) + "\n"
            )
            if name != wanted:
                LOG.info("publish: the run name %s is taken by another evaluation; this run is %s", wanted, name)
            return name
    raise ValueError(f"more than {MAX_SUFFIX} published runs are named {wanted}-N in {root}")


def renamed_sessions(evaluation_logs: Path, run_name: str, folder: Path) -> int:
    """Copies of the evaluation's HParams session files (``<model>/events.*``), written under ``folder`` at the
    same relative paths, with each session's group named ``<run_name>/<model>`` and its ``run`` hyperparameter
    set to ``run_name``; returns how many. Copied over the published ones, they make the dashboard's rows read
    by run name."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    written = 0
    for path in sorted(evaluation_logs.glob("*/events.out.tfevents.*")):
        events, changed = [], False
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag != metadata.SESSION_START_INFO_TAG:
                    continue
                data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                data.session_start_info.group_name = f"{run_name}/{path.parent.name}"
                if RUN_HPARAM in data.session_start_info.hparams:
                    data.session_start_info.hparams[RUN_HPARAM].string_value = run_name
                value.metadata.plugin_data.content = data.SerializeToString()
                changed = True
            events.append(event)
        if not changed:
            continue
        buffer = io.BytesIO()
        writer = RecordWriter(buffer)
        for event in events:
            writer.write(event.SerializeToString())
        target = folder / path.relative_to(evaluation_logs)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(buffer.getvalue())
        written += 1
    return written
