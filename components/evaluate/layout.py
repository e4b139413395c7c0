"""The evaluate stage's artifact folder: the names publish, the run report and tests read it by.

::

    blessing.json               every check of every candidate (name, value, its 95% interval, the McNemar
                                p-value of paired checks, threshold, rule, decided_by, passed), the blessed
                                model or none, the reasons, the baseline and the last blessed model compared
                                (accuracies with their 95% intervals), how the statistics are computed
    BLESSED | NOT_BLESSED       an empty marker file
    metrics/<model>.json        accuracy and its 95% Wilson interval, top-5 accuracy, per-class
                                precision/recall/F1, macro-F1, log loss, confusion matrix
    images/<model>/*.png        confusion matrix, misclassified test images
    tensorboard/                the same for TensorBoard (see :mod:`.tensorboard_logs`)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubpipe.components.evaluate.intervals import Interval
from hubpipe.pipeline.core.artifacts import read_json_checked

STAGE = "evaluate"
BLESSING_FILE = "blessing.json"
BLESSED_MARKER = "BLESSED"
NOT_BLESSED_MARKER = "NOT_BLESSED"
METRICS_DIR = "metrics"
IMAGES_DIR = "images"
TENSORBOARD_DIR = "tensorboard"
#: The HParams hyperparameter that names a model's run: the evaluation id here, the run name once published.
RUN_HPARAM = "run"


def artifacts(blessed: bool) -> dict[str, str]:
    """The stage's artifacts (name -> path in its folder), as its manifest lists them."""
    return {
        "blessing": BLESSING_FILE,
        "marker": BLESSED_MARKER if blessed else NOT_BLESSED_MARKER,
        "metrics": METRICS_DIR,
        "images": IMAGES_DIR,
        "tensorboard": TENSORBOARD_DIR,
    }


#: The containers readers walk through in blessing.json (see
#: :func:`~hubpipe.pipeline.core.artifacts.read_json_checked`).
_NUMBER = (int, float)
BLESSING_SHAPE = {
    "candidates": [{"accuracy": _NUMBER}],
    "checks": [dict],
    "reasons": list,
    "reference": {"metrics": dict},
    "thresholds": dict,
}
#: A model's gate in the models table: blessed, a candidate that passed or failed its checks, or a baseline.
BLESSED, PASSED, FAILED, BASELINE = "blessed", "passed", "failed", "baseline"


@dataclass(frozen=True)
class Check:
    """One check of one candidate: written by the gate (:mod:`.blessing`), read back from blessing.json.

    ``value`` is the point estimate (an accuracy or a difference of accuracies), ``interval`` its 95% interval,
    ``p_value`` the exact McNemar p-value of the paired checks; ``rule`` says in words what decided, and
    ``decided_by`` whether that was the interval or the point estimate.
    """

    candidate: str
    name: str
    value: float | None  # None when skipped
    threshold: float
    passed: bool | None  # None when skipped
    detail: str
    interval: Interval | None = None
    p_value: float | None = None
    rule: str = ""
    decided_by: str = ""  # INTERVAL_RULE or POINT_RULE; "" when skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "name": self.name,
            "value": self.value,
            "interval": None if self.interval is None else self.interval.as_list(),
            "p_value": self.p_value,
            "threshold": self.threshold,
            "rule": self.rule,
            "decided_by": self.decided_by,
            "passed": self.passed,
            "skipped": self.passed is None,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Check:
        get = record.get
        bounds = get("interval")
        return cls(
            get("candidate"),
            get("name"),
            get("value"),
            get("threshold"),
            get("passed"),
            get("detail", ""),
            interval=Interval(*bounds) if bounds else None,
            p_value=get("p_value"),
            rule=get("rule", ""),
            decided_by=get("decided_by", ""),
        )


@dataclass(frozen=True)
class Candidate:
    """A transfer model the gate judged: its test accuracy and whether it passed every check."""

    name: str | None
    accuracy: float | None
    passed: bool | None


@dataclass(frozen=True)
class BlessedModel:
    name: str
    model_key: str
    accuracy: float | None
    macro_f1: float | None


@dataclass(frozen=True)
class Reference:
    """The last blessed model the candidates were compared with (``metrics`` None when the check was skipped)."""

    version: str | None = None
    method: str | None = None
    skip_reason: str | None = None
    metrics: Mapping[str, Any] | None = None
    latest_seen: str | None = None  # what LATEST named when evaluate looked (older records: the version)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Reference:
        latest_seen = record["latest_seen"] if "latest_seen" in record else record.get("version")
        get = record.get
        return cls(get("version"), get("method"), get("skip_reason"), get("metrics"), latest_seen)


@dataclass(frozen=True)
class Blessing:
    """evaluate's decision (blessing.json), parsed once here for every reader: publish, the run report, the
    API, tracking and the KFP UI. An evaluate stage that has not run reads as ``Blessing()``: nothing blessed."""

    evaluation_id: str = ""
    blessed: str | None = None
    blessed_model: BlessedModel | None = None
    candidates: tuple[Candidate, ...] = ()
    checks: tuple[Check, ...] = ()
    reasons: tuple[str, ...] = ()
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    reference: Reference = field(default_factory=Reference)
    #: The file as written, for those that keep it whole (publish copies it beside the model; ``Run.blessing``).
    record: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Blessing:
        blessed = record.get("blessed_model")
        return cls(
            evaluation_id=record.get("evaluation_id") or "",
            blessed=record.get("blessed") or None,
            blessed_model=None
            if not blessed
            else BlessedModel(blessed["name"], blessed["model_key"], blessed.get("accuracy"), blessed.get("macro_f1")),
            candidates=tuple(
                Candidate(c.get("name"), c.get("accuracy"), c.get("passed")) for c in record.get("candidates") or []
            ),
            checks=tuple(Check.from_dict(check) for check in record.get("checks") or []),
            reasons=tuple(record.get("reasons") or ()),
            thresholds=record.get("thresholds") or {},
            reference=Reference.from_dict(record.get("reference") or {}),
            record=record,
        )

    @property
    def featured(self) -> str | None:
        """The blessed model, else the most accurate candidate: the one the report and the KFP UI show first."""
        if self.blessed:
            return self.blessed
        best = max(self.candidates, key=lambda candidate: candidate.accuracy or 0, default=None)
        return best.name if best else None

    def gate(self, model: str) -> str:
        """``model``'s gate: blessed, passed or failed (a candidate), or baseline (not judged)."""
        if self.blessed == model:
            return BLESSED
        passed = {candidate.name: candidate.passed for candidate in self.candidates}
        if model not in passed:
            return BASELINE
        return PASSED if passed[model] else FAILED


def read_blessing(folder: Path | None) -> Blessing:
    """The blessing in evaluate's ``folder``: ``Blessing()`` when the folder (None) or the file is missing; a
    file that is not what evaluate writes is a :class:`~hubpipe.pipeline.core.errors.UsageError` naming it."""
    if folder is None:
        return Blessing()
    return Blessing.from_dict(read_json_checked(Path(folder) / BLESSING_FILE, BLESSING_SHAPE, {}))
