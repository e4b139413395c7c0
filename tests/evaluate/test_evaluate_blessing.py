"""The gate: every check of every candidate, and which candidate is blessed.

Scores are built from hit vectors (which test images a model gets right) whose 2x2 tables are known, so the
intervals, and so the decisions, are known too.
"""

from __future__ import annotations

import numpy as np
import pytest

from hubpipe.components.evaluate.blessing import (
    MARGIN_OVER_BASELINE,
    MAX_DROP_VS_BLESSED,
    MIN_ACCURACY,
    MIN_TEST_IMAGES_TO_SHOW,
    Comparison,
    Decision,
    Score,
    decide,
)
from hubpipe.pipeline.core.config import EvaluateConfig

THRESHOLDS = EvaluateConfig(min_accuracy=0.5, min_margin_over_baseline=0.1, max_drop_vs_blessed=0.02)
POINT = EvaluateConfig(min_accuracy=0.5, min_margin_over_baseline=0.1, max_drop_vs_blessed=0.02, rule="point")
NO_REFERENCE = Comparison(None, None, "no blessed model in the publish root yet")


def right_on(start: int, stop: int, n: int = 100, macro_f1: float = 0.5) -> Score:
    """A model that gets test images ``start`` to ``stop - 1`` of ``n`` right."""
    hits = np.zeros(n, dtype=bool)
    hits[start:stop] = True
    return Score(hits, macro_f1)


def checks_of(decision: Decision, candidate: str) -> dict:
    return {check.name: check for check in decision.checks if check.candidate == candidate}


# The interval rule (the default).


def test_an_identical_quality_candidate_differing_on_a_few_images_is_not_refused() -> None:
    blessed = Comparison("v1", right_on(0, 225, 250))
    same = {"same": right_on(3, 228, 250)}  # 225 right, 3 images each way
    drop = checks_of(decide(same, NO_REFERENCE, blessed, THRESHOLDS), "same")[MAX_DROP_VS_BLESSED]
    assert drop.passed is True and drop.value == 0.0 and drop.p_value == pytest.approx(1.0)
    assert drop.interval.low < 0 < drop.interval.high


def test_a_drop_within_the_noise_is_not_refused_where_the_point_rule_refuses() -> None:
    blessed = Comparison("v1", right_on(0, 225, 250))
    slightly_worse = {"candidate": right_on(8, 226, 250)}  # 218 right: 2.8 points below, on 9 disagreements
    interval = decide(slightly_worse, NO_REFERENCE, blessed, THRESHOLDS)
    point = decide(slightly_worse, NO_REFERENCE, blessed, POINT)

    drop = checks_of(interval, "candidate")[MAX_DROP_VS_BLESSED]
    assert drop.value == pytest.approx(0.028) and drop.interval.low < 0.02 < drop.value
    assert drop.passed is True and drop.decided_by == "interval" and interval.blessed == "candidate"
    assert checks_of(point, "candidate")[MAX_DROP_VS_BLESSED].passed is False and point.blessed is None


def test_the_small_run_of_the_issue_is_not_refused_for_a_drop_within_its_noise() -> None:
    """40 test images, 12.5 points below the blessed model (7 images it alone gets right, 2 the candidate)."""
    blessed = Comparison("v1", right_on(0, 36, 40))
    candidate = {"candidate": right_on(7, 38, 40)}
    drop = checks_of(decide(candidate, NO_REFERENCE, blessed, THRESHOLDS), "candidate")[MAX_DROP_VS_BLESSED]
    assert drop.value == pytest.approx(0.125) and drop.passed is True
    assert drop.interval.low <= 0.02


def test_a_candidate_ten_points_worse_on_250_images_is_refused() -> None:
    blessed = Comparison("v1", right_on(0, 225, 250))
    worse = {"worse": right_on(30, 230, 250)}  # 200 right: 30 images only the blessed model gets, 5 the reverse
    decision = decide(worse, NO_REFERENCE, blessed, THRESHOLDS)
    drop = checks_of(decision, "worse")[MAX_DROP_VS_BLESSED]
    assert drop.value == pytest.approx(0.1) and drop.interval.low > 0.02
    assert drop.passed is False and "shown worse" in drop.detail and drop.p_value < 1e-4
    assert decision.blessed is None
    assert any(reason.startswith("worse failed max_drop_vs_blessed") for reason in decision.reasons)


def test_the_baseline_margin_must_be_shown_by_the_interval_on_a_large_test_set() -> None:
    baseline = Comparison("scratch_cnn", right_on(0, 125, 250))  # 0.5
    candidates = {"clear": right_on(0, 200, 250), "marginal": right_on(0, 155, 250)}  # 0.8, 0.62
    decision = decide(candidates, baseline, NO_REFERENCE, THRESHOLDS)
    clear, marginal = (
        checks_of(decision, "clear")[MARGIN_OVER_BASELINE],
        checks_of(decision, "marginal")[MARGIN_OVER_BASELINE],
    )
    assert clear.passed is True and clear.interval.low > 0.1 and clear.decided_by == "interval"
    assert marginal.value == pytest.approx(0.12) and marginal.interval.low < 0.1
    assert marginal.passed is False and marginal.decided_by == "interval"
    assert "lower end of the 95% interval" in marginal.rule
    assert decide(candidates, baseline, NO_REFERENCE, POINT).failed("marginal") == []


def test_on_a_small_test_set_the_point_estimate_decides_the_margin_and_the_interval_is_reported() -> None:
    baseline = Comparison("scratch_cnn", right_on(0, 20, 40))
    decision = decide({"candidate": right_on(0, 25, 40)}, baseline, NO_REFERENCE, THRESHOLDS)
    margin = checks_of(decision, "candidate")[MARGIN_OVER_BASELINE]
    assert margin.value == pytest.approx(0.125) and margin.interval.low < 0.1  # not shown, yet ...
    assert margin.passed is True and margin.decided_by == "point"  # ... too few images to ask it
    assert f"fewer than the {MIN_TEST_IMAGES_TO_SHOW}" in margin.rule
    assert margin.to_dict()["interval"] == [margin.interval.low, margin.interval.high]


def test_the_accuracy_floor_must_be_shown_where_the_test_set_can_show_it() -> None:
    large = checks_of(decide({"c": right_on(0, 132, 250)}, NO_REFERENCE, NO_REFERENCE, THRESHOLDS), "c")
    floor = large[MIN_ACCURACY]
    assert floor.value == pytest.approx(0.528) and floor.interval.low < 0.5 and floor.passed is False
    assert floor.p_value is None and floor.decided_by == "interval"

    small = checks_of(decide({"c": right_on(0, 22, 40)}, NO_REFERENCE, NO_REFERENCE, THRESHOLDS), "c")
    assert small[MIN_ACCURACY].passed is True and small[MIN_ACCURACY].decided_by == "point"

    point = checks_of(decide({"c": right_on(0, 132, 250)}, NO_REFERENCE, NO_REFERENCE, POINT), "c")
    assert point[MIN_ACCURACY].passed is True


def test_every_check_records_value_interval_p_value_rule_and_decision() -> None:
    baseline = Comparison("scratch_cnn", right_on(0, 125, 250))
    blessed = Comparison("v1", right_on(0, 225, 250))
    decision = decide({"c": right_on(0, 220, 250)}, baseline, blessed, THRESHOLDS)
    records = {check.name: check.to_dict() for check in decision.checks}
    for name in (MIN_ACCURACY, MARGIN_OVER_BASELINE, MAX_DROP_VS_BLESSED):
        record = records[name]
        low, high = record["interval"]
        assert low <= record["value"] <= high and record["rule"] and record["decided_by"] == "interval"
        assert isinstance(record["passed"], bool) and record["skipped"] is False
    assert records[MIN_ACCURACY]["p_value"] is None
    assert 0 <= records[MARGIN_OVER_BASELINE]["p_value"] < 1e-6
    assert records[MAX_DROP_VS_BLESSED]["p_value"] == pytest.approx(2 / 2**5)  # 5 discordant, all one way


# The point rule, and what both rules share.


def old_decision(candidates: dict[str, Score], baseline: Score | None, reference: Score | None) -> dict:
    """The gate before intervals: thresholds on point estimates (THRESHOLDS' values)."""
    passed = {}
    for name, score in candidates.items():
        checks = [score.accuracy >= 0.5 - 1e-9]
        if baseline is not None:
            checks.append(score.accuracy - baseline.accuracy >= 0.1 - 1e-9)
        if reference is not None:
            checks.append(reference.accuracy - score.accuracy <= 0.02 + 1e-9)
        passed[name] = all(checks)
    ranked = sorted((n for n in candidates if passed[n]), key=lambda n: (-candidates[n].accuracy, n))
    return {"passed": passed, "blessed": ranked[0] if ranked else None}


@pytest.mark.parametrize("seed", range(40))
def test_the_point_rule_reproduces_the_old_decisions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 300))

    def random_score() -> Score:
        return Score(rng.random(n) < rng.uniform(0.3, 0.95), 0.5)

    candidates = {f"c{i}": random_score() for i in range(3)}
    baseline = random_score() if seed % 3 else None
    reference = random_score() if seed % 2 else None
    decision = decide(
        candidates,
        Comparison("scratch_cnn", baseline) if baseline else Comparison(None, None, "no baseline"),
        Comparison("v1", reference) if reference else NO_REFERENCE,
        POINT,
    )
    expected = old_decision(candidates, baseline, reference)
    assert decision.blessed == expected["blessed"]
    assert {name: not decision.failed(name) for name in candidates} == expected["passed"]
    assert all(check.decided_by in ("point", "") for check in decision.checks)


def test_the_best_passing_candidate_is_blessed_and_a_weak_one_is_not() -> None:
    baseline = Comparison("scratch_cnn", right_on(0, 40))
    candidates = {"weak": right_on(0, 45), "good": right_on(0, 80), "fine": right_on(0, 70)}
    decision = decide(candidates, baseline, NO_REFERENCE, POINT)

    assert decision.blessed == "good"
    weak = checks_of(decision, "weak")
    assert weak[MIN_ACCURACY].passed is False and weak[MIN_ACCURACY].value == 0.45
    assert weak[MIN_ACCURACY].threshold == 0.5
    assert weak[MARGIN_OVER_BASELINE].passed is False
    assert any("weak failed min_accuracy" in reason for reason in decision.reasons)
    assert [c.name for c in decision.failed("weak")] == [MIN_ACCURACY, MARGIN_OVER_BASELINE]
    assert decision.failed("good") == []


@pytest.mark.parametrize("thresholds", [THRESHOLDS, POINT], ids=["interval", "point"])
def test_max_drop_is_skipped_and_says_so_without_a_blessed_model(thresholds: EvaluateConfig) -> None:
    decision = decide({"good": right_on(0, 80)}, NO_REFERENCE, NO_REFERENCE, thresholds)
    drop = checks_of(decision, "good")[MAX_DROP_VS_BLESSED]
    assert drop.passed is None and drop.value is None and drop.interval is None
    assert drop.to_dict()["skipped"] is True
    assert "no blessed model" in drop.detail
    assert any(r.startswith("max_drop_vs_blessed skipped") for r in decision.reasons)
    assert decision.blessed == "good"


def test_margin_is_skipped_without_a_baseline() -> None:
    baseline = Comparison(None, None, "this run trained no from-scratch baseline (train.baseline is off)")
    decision = decide({"good": right_on(0, 60)}, baseline, NO_REFERENCE, THRESHOLDS)
    margin = checks_of(decision, "good")[MARGIN_OVER_BASELINE]
    assert margin.passed is None and "train.baseline is off" in margin.detail
    assert decision.blessed == "good"


def test_a_candidate_failing_one_check_is_never_blessed_even_when_most_accurate() -> None:
    reference = Comparison("v1", right_on(0, 90))
    baseline = Comparison("scratch_cnn", right_on(0, 40))
    candidates = {"best_but_dropped": right_on(0, 85, macro_f1=0.9), "other": right_on(0, 89)}
    decision = decide(candidates, baseline, reference, POINT)
    dropped = checks_of(decision, "best_but_dropped")[MAX_DROP_VS_BLESSED]
    assert dropped.passed is False and round(dropped.value, 6) == 0.05
    assert decision.blessed == "other"

    alone = decide({"best_but_dropped": right_on(0, 85)}, baseline, reference, POINT)
    assert alone.blessed is None
    assert alone.reasons[0].startswith("no candidate passed every check")


@pytest.mark.parametrize("rule", ["interval", "point"])
def test_boundaries_pass_despite_float_rounding(rule: str) -> None:
    thresholds = EvaluateConfig(min_accuracy=0.6, min_margin_over_baseline=0.1, max_drop_vs_blessed=0.1, rule=rule)
    baseline = Comparison("scratch_cnn", right_on(0, 5, 10))
    reference = Comparison("v1", right_on(0, 7, 10))
    decision = decide({"edge": right_on(0, 6, 10)}, baseline, reference, thresholds)
    assert all(check.passed for check in decision.checks), [c.detail for c in decision.checks]
    assert decision.blessed == "edge"


def test_ties_go_to_macro_f1_then_name() -> None:
    candidates = {"b": right_on(0, 80, macro_f1=0.7), "a": right_on(0, 80, macro_f1=0.7)}
    candidates["c"] = right_on(0, 80, macro_f1=0.75)
    assert decide(candidates, NO_REFERENCE, NO_REFERENCE, THRESHOLDS).blessed == "c"
    del candidates["c"]
    assert decide(candidates, NO_REFERENCE, NO_REFERENCE, THRESHOLDS).blessed == "a"
