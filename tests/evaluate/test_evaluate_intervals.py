"""The gate's statistics: Wilson intervals, Newcombe's paired-difference interval and the exact McNemar test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hubpipe.components.evaluate.intervals import mcnemar_exact, paired_difference, wilson_interval


def paired_hits(both: int, a_only: int, b_only: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Two hit vectors with the given 2x2 table (A right and B right, A only, B only, neither)."""
    a = np.array([True] * both + [True] * a_only + [False] * b_only + [False] * neither)
    b = np.array([True] * both + [False] * a_only + [True] * b_only + [False] * neither)
    return a, b


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_interval_matches_published_values(successes: int, n: int, low: float, high: float) -> None:
    """Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table II, method 3."""
    interval = wilson_interval(successes, n)
    assert interval.low == pytest.approx(low, abs=6e-5) and interval.high == pytest.approx(high, abs=6e-5)


def test_wilson_interval_of_a_perfect_score_is_not_a_point() -> None:
    interval = wilson_interval(40, 40)
    assert interval.high == pytest.approx(1.0) and 0.9 < interval.low < 0.92


def test_paired_interval_matches_the_published_example() -> None:
    """Fagerland, Lydersen & Laake, Statistical Analysis of Contingency Tables (2017), chapter 8: the paired table
    59, 6 / 16, 80 (Cavo et al. 2012): Newcombe's square-and-add interval -0.1186 to -0.0046."""
    paired = paired_difference(*paired_hits(59, 6, 16, 80))
    assert paired.difference == pytest.approx(-10 / 161)
    assert paired.interval.low == pytest.approx(-0.1186, abs=6e-5)
    assert paired.interval.high == pytest.approx(-0.0046, abs=6e-5)
    assert (paired.a_only, paired.b_only, paired.both, paired.n) == (6, 16, 59, 161)


def test_mcnemar_exact_is_the_two_sided_binomial_tail_of_the_discordant_pairs() -> None:
    tail = sum(math.comb(22, k) for k in range(7)) / 2**22
    assert mcnemar_exact(6, 16) == pytest.approx(2 * tail)
    assert mcnemar_exact(16, 6) == pytest.approx(2 * tail)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == pytest.approx(1.0)


def test_models_that_agree_everywhere_still_get_an_interval() -> None:
    paired = paired_difference(*paired_hits(30, 0, 0, 10))
    assert paired.difference == 0.0 and paired.p_value == 1.0
    assert paired.interval.low < -0.05 and paired.interval.high > 0.05


def test_the_interval_stays_inside_minus_one_to_one() -> None:
    paired = paired_difference(*paired_hits(0, 12, 0, 0))
    assert paired.difference == 1.0
    assert paired.interval.high == 1.0 and 0.6 < paired.interval.low < 1.0


def test_paired_interval_narrows_with_agreement() -> None:
    """Same accuracies (0.9 vs 0.8 on 250 images), fewer disagreements: a narrower interval."""
    agreeing = paired_difference(*paired_hits(200, 25, 0, 25))
    disagreeing = paired_difference(*paired_hits(175, 50, 25, 0))
    assert agreeing.difference == disagreeing.difference == pytest.approx(0.1)
    assert agreeing.interval.half_width < disagreeing.interval.half_width


@pytest.mark.parametrize(
    "cells",
    [(0.80, 0.06, 0.04, 0.10), (0.55, 0.20, 0.05, 0.20), (0.45, 0.02, 0.02, 0.51)],
    ids=["near-equal", "candidate-better", "rare-disagreement"],
)
def test_paired_interval_covers_the_true_difference_about_95_percent_of_the_time(cells: tuple) -> None:
    """Simulated test sets of 60 images from a known 2x2 table of probabilities."""
    rng = np.random.default_rng(7)
    truth = cells[1] - cells[2]
    tables = rng.multinomial(60, cells, size=1500)
    unique, counts = np.unique(tables, axis=0, return_counts=True)
    covered = 0
    for table, count in zip(unique, counts, strict=True):
        interval = paired_difference(*paired_hits(*(int(v) for v in table))).interval
        covered += count * (interval.low <= truth <= interval.high)
    assert covered / len(tables) >= 0.93


def test_unequal_or_empty_hit_vectors_are_refused() -> None:
    with pytest.raises(ValueError, match="paired hits"):
        paired_difference(np.ones(3, bool), np.ones(4, bool))
    with pytest.raises(ValueError, match="paired hits"):
        paired_difference(np.ones(0, bool), np.ones(0, bool))
