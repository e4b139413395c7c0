"""The gate: which candidate, if any, is blessed.

Every candidate (a transfer model of this run) goes through three checks on test accuracy:

* ``min_accuracy``: accuracy >= ``evaluate.min_accuracy``;
* ``margin_over_baseline``: accuracy - the from-scratch CNN's accuracy >= ``evaluate.min_margin_over_baseline``
  (skipped when this run trained no from-scratch baseline);
* ``max_drop_vs_blessed``: the last blessed model's accuracy - accuracy <= ``evaluate.max_drop_vs_blessed``,
  both measured on this run's test split (skipped when nothing was blessed yet, or when the blessed model
  knows other classes).

A candidate that fails any check is never blessed; among those that pass, the most accurate is blessed
(ties: higher macro-F1, then the name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hubpipe.components.evaluate.layout import Check
from hubpipe.pipeline.core.config import EvaluateConfig

if TYPE_CHECKING:
    from hubpipe.components.evaluate.metrics import ClassificationMetrics

MIN_ACCURACY = "min_accuracy"
MARGIN_OVER_BASELINE = "margin_over_baseline"
MAX_DROP_VS_BLESSED = "max_drop_vs_blessed"
#: Float slack so that, e.g., 0.6 - 0.5 counts as a margin of 0.1.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Score:
    """A model's test score: what the blessing's checks compare."""

    accuracy: float
    macro_f1: float

    @classmethod
    def of(cls, metrics: ClassificationMetrics) -> Score:
        return cls(metrics.accuracy, metrics.macro_f1)


@dataclass(frozen=True)
class Comparison:
    """A model the candidates are compared with: its score, or why the comparison is skipped."""

    name: str | None  # e.g. "scratch_cnn" or the blessed version id
    score: Score | None
    skip_reason: str = ""


@dataclass(frozen=True)
class Decision:
    blessed: str | None
    checks: tuple[Check, ...]
    reasons: tuple[str, ...]

    def failed(self, candidate: str) -> list[Check]:
        return [check for check in self.checks if check.candidate == candidate and check.passed is False]


def _at_least(value: float, threshold: float) -> bool:
    return value >= threshold - TOLERANCE


def _check_floor(candidate: str, score: Score, config: EvaluateConfig) -> Check:
    value, threshold = score.accuracy, config.min_accuracy
    passed = _at_least(value, threshold)
    relation = ">=" if passed else "<"
    return Check(candidate, MIN_ACCURACY, value, threshold, passed, f"accuracy {value:.4f} {relation} {threshold}")


def _check_margin(candidate: str, score: Score, baseline: Comparison, config: EvaluateConfig) -> Check:
    threshold = config.min_margin_over_baseline
    if baseline.score is None:
        return Check(candidate, MARGIN_OVER_BASELINE, None, threshold, None, f"skipped: {baseline.skip_reason}")
    value = score.accuracy - baseline.score.accuracy
    passed = _at_least(value, threshold)
    detail = (
        f"accuracy {score.accuracy:.4f} - {baseline.name} {baseline.score.accuracy:.4f} = {value:+.4f} "
        f"{'>=' if passed else '<'} {threshold}"
    )
    return Check(candidate, MARGIN_OVER_BASELINE, value, threshold, passed, detail)


def _check_drop(candidate: str, score: Score, reference: Comparison, config: EvaluateConfig) -> Check:
    threshold = config.max_drop_vs_blessed
    if reference.score is None:
        return Check(candidate, MAX_DROP_VS_BLESSED, None, threshold, None, f"skipped: {reference.skip_reason}")
    value = reference.score.accuracy - score.accuracy
    passed = _at_least(threshold, value)
    detail = (
        f"blessed {reference.name} {reference.score.accuracy:.4f} - accuracy {score.accuracy:.4f} = {value:+.4f} "
        f"{'<=' if passed else '>'} {threshold}"
    )
    return Check(candidate, MAX_DROP_VS_BLESSED, value, threshold, passed, detail)


def decide(
    candidates: Mapping[str, Score], baseline: Comparison, reference: Comparison, config: EvaluateConfig
) -> Decision:
    """Runs every check on every candidate and picks the blessed one (or none)."""
    checks: list[Check] = []
    for name, score in candidates.items():
        checks.append(_check_floor(name, score, config))
        checks.append(_check_margin(name, score, baseline, config))
        checks.append(_check_drop(name, score, reference, config))
    passing = [name for name in candidates if all(c.passed is not False for c in checks if c.candidate == name)]
    ranked = sorted(passing, key=lambda n: (-candidates[n].accuracy, -candidates[n].macro_f1, n))
    blessed = ranked[0] if ranked else None
    reasons: list[str] = []
    if blessed is not None:
        reasons.append(
            f"{blessed} is blessed: accuracy {candidates[blessed].accuracy:.4f}, "
            f"the best of {len(passing)} candidate(s) that passed every check"
        )
    else:
        reasons.append("no candidate passed every check; nothing is blessed")
    for check in checks:
        if check.passed is False:
            reasons.append(f"{check.candidate} failed {check.name}: {check.detail}")
    for skipped in {c.name: c for c in checks if c.passed is None}.values():
        reasons.append(f"{skipped.name} {skipped.detail}")
    return Decision(blessed, tuple(checks), tuple(reasons))
