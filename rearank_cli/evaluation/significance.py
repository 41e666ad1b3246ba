"""Comparing runs: per-query win/tie/loss, the paired t-test and the paired randomization test.

`compare(run, base, qids)` returns a `Comparison` per measure and changes neither result. Pairs are
taken over every qrels query, a query missing from a run counting as an empty ranking (0).
numpy and scipy are imported only when comparing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rearank_cli.evaluation.evaluator import RunResult
from rearank_cli.evaluation.measures import Measure

#: per-query differences within this of 0 are ties (and a zero variance for the t-test)
TIE_EPSILON = 1e-12


@dataclass(frozen=True)
class Comparison:
    """A run against the baseline on one measure, paired over every qrels query (missing = 0)."""

    delta: float
    win: int
    tie: int
    loss: int
    p_ttest: float
    p_randomization: float


def compare(run: RunResult, base: RunResult, qids: Sequence[str], *, permutations: int = 10_000,
            seed: int = 0) -> dict[Measure, Comparison]:
    """Win/tie/loss, paired two-sided t-test and paired randomization test per measure (not Judged@k)."""
    out: dict[Measure, Comparison] = {}
    for measure in run.measures:
        if measure.judged or measure.text:
            continue
        diffs = [run.number(measure, q) - base.number(measure, q) for q in qids]
        win = sum(1 for d in diffs if d > TIE_EPSILON)
        loss = sum(1 for d in diffs if d < -TIE_EPSILON)
        out[measure] = Comparison(
            delta=run.means[measure] - base.means[measure], win=win, tie=len(diffs) - win - loss, loss=loss,
            p_ttest=paired_t_test(diffs), p_randomization=randomization_test(diffs, permutations, seed),
        )
    return out


def paired_t_test(diffs: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test on per-query differences (1.0 when all are equal)."""
    n = len(diffs)
    if n < 2:
        return 1.0
    mean = math.fsum(diffs) / n
    variance = math.fsum((d - mean) ** 2 for d in diffs) / (n - 1)
    if variance <= 0.0 or math.sqrt(variance) <= TIE_EPSILON * max(1.0, abs(mean)):
        return 1.0 if abs(mean) <= TIE_EPSILON else 0.0
    t = mean / math.sqrt(variance / n)
    from scipy.special import stdtr  # a dependency of pytrec-eval-terrier; imported only when comparing

    return float(min(1.0, 2.0 * stdtr(n - 1, -abs(t))))


def randomization_test(diffs: Sequence[float], permutations: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value of the paired randomization test (random sign flips of the differences).

    p = (1 + #{|sum of flipped differences| >= |observed sum|}) / (1 + permutations), seeded,
    vectorized in blocks of sign matrices.
    """
    import numpy as np

    d = np.asarray(diffs, dtype=np.float64)
    observed = abs(float(d.sum()))
    if not d.size or not np.any(np.abs(d) > TIE_EPSILON):
        return 1.0
    rng = np.random.default_rng(seed)
    tolerance = 1e-9 * max(1.0, observed)
    block = max(1, 4_000_000 // d.size)
    hits = 0
    for start in range(0, permutations, block):
        rows = min(block, permutations - start)
        signs = np.where(rng.random((rows, d.size)) < 0.5, -1.0, 1.0)
        hits += int(np.count_nonzero(np.abs(signs @ d) >= observed - tolerance))
    return (hits + 1) / (permutations + 1)

