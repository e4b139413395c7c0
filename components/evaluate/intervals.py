"""How sure an accuracy, or a difference of two accuracies on the same test images, is: 95% intervals.

* One accuracy (``k`` of ``n`` test images right): the Wilson score interval. Unlike the normal ("Wald")
  interval it stays inside [0, 1] and keeps its coverage near 0 and 1, where good classifiers are.
* Two models scored on the same test images: a paired comparison. Only the discordant images say anything
  about the difference: ``b`` where the first model is right and the second wrong, ``c`` the reverse, so the
  accuracy difference is ``(b - c) / n``.

  - Its interval is Newcombe's hybrid score interval for paired proportions (Newcombe 1998, "Improved
    confidence intervals for the difference between binomial proportions based on paired data", method 10):
    built in closed form from the two Wilson intervals and the correlation of the two models' hits. It
    keeps its coverage on small test sets, stays inside [-1, 1], and does not collapse to a point when the
    models agree everywhere (``b = c = 0``), unlike the exact conditional interval from ``b / (b + c)``, which
    treats the number of disagreements as fixed and then claims a difference of exactly zero.
  - The exact McNemar test (``b`` out of ``b + c`` against a fair coin, two-sided) says whether the two
    models differ at all; the gate's thresholds are about differences other than zero, so the gate decides
    on the interval and reports the p-value beside it.

The binomial computations are scipy's (``scipy.stats.binomtest``), imported where they are used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Confidence level of every interval the evaluate stage reports.
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A closed interval ``[low, high]``."""

    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def as_list(self) -> list[float]:
        return [self.low, self.high]

    def __str__(self) -> str:
        return f"[{self.low:+.4f}, {self.high:+.4f}]"


@dataclass(frozen=True)
class PairedDifference:
    """The accuracy of model A minus that of model B on the same ``n`` test images."""

    n: int
    a_only: int  # b: images A gets right and B wrong
    b_only: int  # c: images B gets right and A wrong
    both: int  # images both get right
    interval: Interval  # 95%, Newcombe's hybrid score interval
    p_value: float  # exact McNemar, two-sided

    @property
    def difference(self) -> float:
        return (self.a_only - self.b_only) / self.n


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The Wilson score interval of a proportion ``successes / n`` (``n`` at least 1)."""
    from scipy.stats import binomtest

    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"a proportion needs 0 <= successes <= n and n >= 1, got {successes} of {n}")
    found = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(float(found.low), float(found.high))


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """The exact two-sided McNemar p-value on the discordant counts; 1.0 when there is none."""
    from scipy.stats import binomtest

    discordant = a_only + b_only
    if discordant == 0:
        return 1.0
    return float(binomtest(int(a_only), int(discordant), 0.5).pvalue)


def _phi(both: int, a_only: int, b_only: int, neither: int) -> float:
    """Newcombe's estimate of the correlation of the two models' hits: the phi coefficient of the 2x2 table, with
    a positive association shrunk by ``n / 2`` (a continuity correction; 0 when the shrinking passes zero), and
    0 when a margin of the table is empty."""
    margins = (both + a_only) * (b_only + neither) * (both + b_only) * (a_only + neither)
    if margins == 0:
        return 0.0
    n = both + a_only + b_only + neither
    association = both * neither - a_only * b_only
    if association >= 0:
        association = max(association - n / 2, 0.0)
    return association / math.sqrt(margins)


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray, confidence: float = CONFIDENCE) -> PairedDifference:
    """Accuracy of A minus accuracy of B from their per-image hits (booleans, the same images in the same order)."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired hits need two equal, non-empty vectors, got shapes {a.shape} and {b.shape}")
    n = len(a)
    both, a_only, b_only = int(np.sum(a & b)), int(np.sum(a & ~b)), int(np.sum(~a & b))
    neither = n - both - a_only - b_only
    p_a, p_b = (both + a_only) / n, (both + b_only) / n
    ci_a, ci_b = wilson_interval(both + a_only, n, confidence), wilson_interval(both + b_only, n, confidence)
    phi = _phi(both, a_only, b_only, neither)
    difference = p_a - p_b
    below = (p_a - ci_a.low) ** 2 - 2 * phi * (p_a - ci_a.low) * (ci_b.high - p_b) + (ci_b.high - p_b) ** 2
    above = (ci_a.high - p_a) ** 2 - 2 * phi * (ci_a.high - p_a) * (p_b - ci_b.low) + (p_b - ci_b.low) ** 2
    interval = Interval(
        max(-1.0, difference - math.sqrt(max(below, 0.0))), min(1.0, difference + math.sqrt(max(above, 0.0)))
    )
    return PairedDifference(n, a_only, b_only, both, interval, mcnemar_exact(a_only, b_only))
