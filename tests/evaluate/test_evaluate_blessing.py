"""The gate: every check of every candidate, and which candidate is blessed."""

from __future__ import annotations

from hubpipe.components.evaluate.blessing import (
    MARGIN_OVER_BASELINE,
    MAX_DROP_VS_BLESSED,
    MIN_ACCURACY,
    Comparison,
    Score,
    decide,
)
from hubpipe.pipeline.core.config import EvaluateConfig

THRESHOLDS = EvaluateConfig(min_accuracy=0.5, min_margin_over_baseline=0.1, max_drop_vs_blessed=0.02)
BASELINE = Comparison("scratch_cnn", Score(0.4, 0.35))
NO_REFERENCE = Comparison(None, None, "no blessed model in the publish root yet")


def checks_of(decision, candidate: str) -> dict:
    return {check.name: check for check in decision.checks if check.candidate == candidate}


def test_the_best_passing_candidate_is_blessed_and_a_weak_one_is_not() -> None:
    candidates = {"weak": Score(0.45, 0.4), "good": Score(0.8, 0.78), "fine": Score(0.7, 0.7)}
    decision = decide(candidates, BASELINE, NO_REFERENCE, THRESHOLDS)

    assert decision.blessed == "good"
    weak = checks_of(decision, "weak")
    assert weak[MIN_ACCURACY].passed is False and weak[MIN_ACCURACY].value == 0.45
    assert weak[MIN_ACCURACY].threshold == 0.5
    assert weak[MARGIN_OVER_BASELINE].passed is False
    assert any("weak failed min_accuracy" in reason for reason in decision.reasons)
    assert [c.name for c in decision.failed("weak")] == [MIN_ACCURACY, MARGIN_OVER_BASELINE]
    assert decision.failed("good") == []


def test_max_drop_is_skipped_and_says_so_without_a_blessed_model() -> None:
    decision = decide({"good": Score(0.8, 0.8)}, BASELINE, NO_REFERENCE, THRESHOLDS)
    drop = checks_of(decision, "good")[MAX_DROP_VS_BLESSED]
    assert drop.passed is None and drop.value is None
    assert drop.to_dict()["skipped"] is True
    assert "no blessed model" in drop.detail
    assert any(r.startswith("max_drop_vs_blessed skipped") for r in decision.reasons)
    assert decision.blessed == "good"


def test_margin_is_skipped_without_a_baseline() -> None:
    baseline = Comparison(None, None, "this run trained no from-scratch baseline (train.baseline is off)")
    decision = decide({"good": Score(0.6, 0.6)}, baseline, NO_REFERENCE, THRESHOLDS)
    margin = checks_of(decision, "good")[MARGIN_OVER_BASELINE]
    assert margin.passed is None and "train.baseline is off" in margin.detail
    assert decision.blessed == "good"


def test_a_candidate_failing_one_check_is_never_blessed_even_when_most_accurate() -> None:
    reference = Comparison("v1", Score(0.9, 0.9))
    candidates = {"best_but_dropped": Score(0.85, 0.85), "other": Score(0.89, 0.88)}
    decision = decide(candidates, BASELINE, reference, THRESHOLDS)
    dropped = checks_of(decision, "best_but_dropped")[MAX_DROP_VS_BLESSED]
    assert dropped.passed is False and round(dropped.value, 6) == 0.05
    assert decision.blessed == "other"

    alone = decide({"best_but_dropped": Score(0.85, 0.85)}, BASELINE, reference, THRESHOLDS)
    assert alone.blessed is None
    assert alone.reasons[0].startswith("no candidate passed every check")


def test_boundaries_pass_despite_float_rounding() -> None:
    thresholds = EvaluateConfig(min_accuracy=0.6, min_margin_over_baseline=0.1, max_drop_vs_blessed=0.1)
    baseline = Comparison("scratch_cnn", Score(0.5, 0.5))
    reference = Comparison("v1", Score(0.7, 0.7))
    decision = decide({"edge": Score(0.6, 0.6)}, baseline, reference, thresholds)
    assert all(check.passed for check in decision.checks), [c.detail for c in decision.checks]
    assert decision.blessed == "edge"


def test_ties_go_to_macro_f1_then_name() -> None:
    candidates = {"b": Score(0.8, 0.7), "a": Score(0.8, 0.7), "c": Score(0.8, 0.75)}
    assert decide(candidates, BASELINE, NO_REFERENCE, THRESHOLDS).blessed == "c"
    del candidates["c"]
    assert decide(candidates, BASELINE, NO_REFERENCE, THRESHOLDS).blessed == "a"
