"""nDCG@k as REARANK's data and reward use it (spec sections 6-7).

Linear gain (the label), log2(rank + 1) discount, ideal DCG over ALL judged docs of the query.
`rearank eval` uses pytrec_eval instead; this module serves augment and the reward.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def dcg(labels: Sequence[int], k: int = 10) -> float:
    """Discounted cumulative gain of labels in ranked order, cut at k."""
    return sum(max(label, 0) / math.log2(rank + 2) for rank, label in enumerate(labels[:k]))


def ideal_dcg(judged: Iterable[int], k: int = 10) -> float:
    """DCG of the ideal order of all judged labels of a query."""
    return dcg(sorted((label for label in judged if label > 0), reverse=True), k)


def ndcg(labels: Sequence[int], judged: Iterable[int], k: int = 10) -> float:
    """nDCG@k of `labels` (ranked order) against the ideal DCG of `judged`; 0 when nothing is relevant."""
    ideal = ideal_dcg(judged, k)
    return dcg(labels, k) / ideal if ideal > 0 else 0.0
