"""The gate: which candidate, if any, is blessed.

Every model is scored on the same test images, so a candidate is compared with the from-scratch baseline and
with the last blessed model image by image (see :mod:`.intervals`): each check has a point estimate, its 95%
interval and, for the paired checks, the exact McNemar p-value. Every candidate goes through three checks:

* ``min_accuracy``: the candidate's accuracy against ``evaluate.min_accuracy``;
* ``margin_over_baseline``: accuracy - the from-scratch CNN's accuracy against
  ``evaluate.min_margin_over_baseline`` (skipped when this run trained no from-scratch baseline);
* ``max_drop_vs_blessed``: the last blessed model's accuracy - accuracy against ``evaluate.max_drop_vs_blessed``
  (skipped when nothing was blessed yet, or when the blessed model knows other classes).

``evaluate.rule`` says how a check decides:

* ``interval`` (the default) puts the burden of proof where a small test set cannot hurt a good candidate.
  Against the blessed model a candidate is refused only when the data show it worse: the whole 95% interval of
  (blessed - candidate) lies above ``max_drop_vs_blessed``. The floor and the baseline margin must be shown:
  the interval's lower end at or above the threshold, on a test set of at least :data:`MIN_TEST_IMAGES_TO_SHOW`
  images. On fewer images the interval of an accuracy is wider than +-10 points, wider than the thresholds
  people set, so requiring its lower end would refuse every candidate of a small run; there the point estimate
  decides, as before, and the interval is reported beside it.
* ``point`` decides every check on the point estimate (the behaviour before intervals existed); the intervals
  are still reported.

A candidate that fails any check is never blessed; among those that pass, the most accurate is blessed
(ties: higher macro-F1, then the name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from hubpipe.components.evaluate.intervals import Interval, paired_difference, wilson_interval
from hubpipe.components.evaluate.layout import Check
from hubpipe.pipeline.core.config import GATE_RULES, EvaluateConfig

MIN_ACCURACY = "min_accuracy"
MARGIN_OVER_BASELINE = "margin_over_baseline"
MAX_DROP_VS_BLESSED = "max_drop_vs_blessed"
INTERVAL_RULE, POINT_RULE = GATE_RULES
#: Under the interval rule, the floor and the baseline margin are required of the interval's lower end from this
#: many test images on (the 95% Wilson interval of an accuracy is at most about +-0.098 wide there); below it the
#: point estimate decides.
MIN_TEST_IMAGES_TO_SHOW = 100
#: Float slack so that, e.g., 0.6 - 0.5 counts as a margin of 0.1.
TOLERANCE = 1e-9


@dataclass(frozen=True, eq=False)
class Score:
    """A model's test score: which test images it got right (in the test split's order), and its macro-F1."""

    hits: np.ndarray  # bool [n]
    macro_f1: float

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.hits))

    @property
    def examples(self) -> int:
        return len(self.hits)


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


@dataclass(frozen=True)
class _Ruling:
    passed: bool
    rule: str  # what decided, in words
    decided_by: str  # INTERVAL_RULE or POINT_RULE
    verdict: str  # the comparison that decided, for the detail line


@dataclass(frozen=True)
class _Estimate:
    """A point estimate, its 95% interval, the number of test images behind it, the McNemar p-value if paired."""

    value: float
    interval: Interval
    examples: int
    p_value: float | None = None


def _require(what: str, estimate: _Estimate, threshold: float, config: EvaluateConfig) -> _Ruling:
    """A requirement the candidate must show: ``what`` at or above ``threshold``."""
    low, value = estimate.interval.low, estimate.value
    if config.rule == INTERVAL_RULE and estimate.examples >= MIN_TEST_IMAGES_TO_SHOW:
        passed = _at_least(low, threshold)
        verdict = f"lower end {low:+.4f} {'>=' if passed else '<'} {threshold}"
        return _Ruling(passed, f"lower end of the 95% interval of {what} >= {threshold}", INTERVAL_RULE, verdict)
    passed = _at_least(value, threshold)
    rule = f"{what} >= {threshold}"
    if config.rule == INTERVAL_RULE:
        rule += (
            f" (point estimate: {estimate.examples} test images are fewer than the {MIN_TEST_IMAGES_TO_SHOW} "
            "an interval needs to show it)"
        )
    return _Ruling(passed, rule, POINT_RULE, f"{value:+.4f} {'>=' if passed else '<'} {threshold}")


def _refuse_if_shown_worse(estimate: _Estimate, threshold: float, config: EvaluateConfig) -> _Ruling:
    """A drop the candidate is refused for only when it exceeds ``threshold`` (shown so, under the interval rule)."""
    if config.rule == POINT_RULE:
        passed = _at_least(threshold, estimate.value)
        verdict = f"{estimate.value:+.4f} {'<=' if passed else '>'} {threshold}"
        return _Ruling(passed, f"blessed accuracy - accuracy <= {threshold}", POINT_RULE, verdict)
    low = estimate.interval.low
    passed = _at_least(threshold, low)
    verdict = f"lower end {low:+.4f} " + (f"<= {threshold}" if passed else f"> {threshold}: shown worse")
    rule = f"refused only if the whole 95% interval of blessed accuracy - accuracy lies above {threshold}"
    return _Ruling(passed, rule, INTERVAL_RULE, verdict)


def _decided(
    candidate: str, name: str, *, threshold: float, estimate: _Estimate, ruling: _Ruling, detail: str
) -> Check:
    return Check(
        candidate=candidate,
        name=name,
        value=estimate.value,
        threshold=threshold,
        passed=ruling.passed,
        detail=f"{detail}: {ruling.verdict}",
        interval=estimate.interval,
        p_value=estimate.p_value,
        rule=ruling.rule,
        decided_by=ruling.decided_by,
    )


def _paired(first: Score, second: Score) -> tuple[_Estimate, int, int]:
    """First's accuracy minus second's, and the test images only first, and only second, gets right."""
    paired = paired_difference(first.hits, second.hits)
    return _Estimate(paired.difference, paired.interval, paired.n, paired.p_value), paired.a_only, paired.b_only


def _check_floor(candidate: str, score: Score, config: EvaluateConfig) -> Check:
    hits, threshold = int(np.sum(score.hits)), config.min_accuracy
    estimate = _Estimate(score.accuracy, wilson_interval(hits, score.examples), score.examples)
    detail = f"accuracy {score.accuracy:.4f} ({hits}/{score.examples}), 95% interval {estimate.interval}"
    return _decided(
        candidate,
        MIN_ACCURACY,
        threshold=threshold,
        estimate=estimate,
        ruling=_require("accuracy", estimate, threshold, config),
        detail=detail,
    )


def _check_margin(candidate: str, score: Score, baseline: Comparison, config: EvaluateConfig) -> Check:
    threshold = config.min_margin_over_baseline
    if baseline.score is None:
        return Check(candidate, MARGIN_OVER_BASELINE, None, threshold, None, f"skipped: {baseline.skip_reason}")
    estimate, only_candidate, only_baseline = _paired(score, baseline.score)
    ruling = _require(f"accuracy - {baseline.name} accuracy", estimate, threshold, config)
    detail = (
        f"accuracy {score.accuracy:.4f} - {baseline.name} {baseline.score.accuracy:.4f} = {estimate.value:+.4f}, "
        f"95% interval {estimate.interval}, McNemar p = {estimate.p_value:.3g} ({only_candidate} test images only "
        f"the candidate gets right, {only_baseline} only {baseline.name})"
    )
    return _decided(
        candidate, MARGIN_OVER_BASELINE, threshold=threshold, estimate=estimate, ruling=ruling, detail=detail
    )


def _check_drop(candidate: str, score: Score, reference: Comparison, config: EvaluateConfig) -> Check:
    threshold = config.max_drop_vs_blessed
    if reference.score is None:
        return Check(candidate, MAX_DROP_VS_BLESSED, None, threshold, None, f"skipped: {reference.skip_reason}")
    estimate, only_blessed, only_candidate = _paired(reference.score, score)
    detail = (
        f"blessed {reference.name} {reference.score.accuracy:.4f} - accuracy {score.accuracy:.4f} = "
        f"{estimate.value:+.4f}, 95% interval {estimate.interval}, McNemar p = {estimate.p_value:.3g} "
        f"({only_blessed} test images only the blessed model gets right, {only_candidate} only the candidate)"
    )
    ruling = _refuse_if_shown_worse(estimate, threshold, config)
    return _decided(
        candidate, MAX_DROP_VS_BLESSED, threshold=threshold, estimate=estimate, ruling=ruling, detail=detail
    )


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
