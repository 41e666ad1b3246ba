"""trec_eval's summaries: how per-query values become one number per measure.

With -c (`complete`, rearank's aggregation): the mean over every qrels query, added in qid order as
trec_eval adds them; a query missing from the run takes the measure's value on an empty ranking
(pytrec_eval cannot evaluate one: it crashes or returns garbage there). Counts (num_ret, ...) are sums,
gm_map and gm_bpref geometric means; the summary num_rel counts every label > 0 whatever -l says
(trec_eval's -c num_rel goes back to the qrels file). Without -c (trec_eval's default, for its layout):
the same over the queries the run answers only, num_rel the sum of their per-query values (at -l).
Judged@k, undefined for a missing query, is the mean over the queries the run answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from rearank_cli.evaluation.measures import GM_FLOOR, Measure
from rearank_cli.formats.trec import Qrels


class Summary:
    """trec_eval summaries over one qrels at one relevance level, with -c (`complete`) or without."""

    def __init__(self, qrels: Qrels, level: int, complete: bool = True) -> None:
        """Counts what an empty ranking needs: relevant docs per query at `level`, and labels > 0."""
        self.qids = sorted(qrels)
        self.complete = complete
        self.num_rel = {qid: sum(1 for rel in judged.values() if rel >= level) for qid, judged in qrels.items()}
        self.num_rel_c = sum(1 for judged in qrels.values() for rel in judged.values() if rel > 0)

    def mean(self, measure: Measure, values: Mapping[str, float]) -> float:
        """The summary of a measure's per-query values: with -c missing queries count as an empty
        ranking; without it only the queries in `values` (those the run answers) count."""
        if measure.judged:
            return mean_c(values, self.qids, judged=True)
        if measure.family == "num_rel" and self.complete:
            return float(self.num_rel_c)
        qids = self.qids if self.complete else [qid for qid in self.qids if qid in values]
        total = 0.0
        for qid in qids:  # added in qid order, as trec_eval adds them
            value = values.get(qid)
            total += value if value is not None else self.empty_value(measure, qid)
        if measure.count:
            return total
        if not qids:
            return 0.0
        if measure.family.startswith("gm_"):
            return math.exp(total / len(qids))
        return total / len(qids)

    def empty_value(self, measure: Measure, qid: str) -> float:
        """A measure's value on an empty ranking (what trec_eval -c uses for a query missing from the run)."""
        if measure.family == "num_q":
            return 1.0
        if measure.family == "num_rel":
            return float(self.num_rel[qid])
        if measure.family.startswith("gm_"):
            return math.log(GM_FLOOR)
        return 0.0


def mean_c(values: Mapping[str, float], qids: Sequence[str], judged: bool = False) -> float:
    """trec_eval -c mean: per-query values added in qid order, divided by all qrels queries.

    Judged@k is averaged over the queries the run answers instead (it is undefined for the others).
    """
    total = 0.0
    for qid in qids:
        value = values.get(qid)
        if value is not None:
            total += value
    count = len(values) if judged else len(qids)
    return total / count if count else 0.0
