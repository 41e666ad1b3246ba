"""Providers: what computes each measure's per-query values.

`PytrecEval` runs trec_eval's own C code (pytrec_eval) for every trec_eval measure; beside it, small
providers compute what that code does not give: `RecipRankAt` (MRR@k: recip_rank on the top k docs,
trec_eval -M k), `Judged` (Judged@k, as pyserini's judged.k) and `Relstring` (pytrec_eval returns no
text). Every provider measures a batch of queries, all of them in the qrels, given as
`{qid: {docid: score}}` with `tops[qid][k]`, the top k docids in trec_eval's order for each k in its
`cutoffs`. pytrec_eval and numpy are imported lazily.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Protocol

from rearank_cli.evaluation.measures import POINTS, Measure
from rearank_cli.formats.trec import Qrels

Batch = dict[str, dict[str, float]]
Tops = dict[str, dict[int, list[str]]]
Values = dict[Measure, dict[str, float | str]]


class Provider(Protocol):
    """Computes per-query values of some measures."""

    measures: list[Measure]
    cutoffs: set[int]

    def score(self, batch: Batch, tops: Tops) -> Values:
        """Per-query values of `self.measures` for the queries of `batch`."""
        ...


def providers(qrels: Qrels, measures: Sequence[Measure], level: int) -> list[Provider]:
    """The providers for `measures` (each measure to exactly one; `runid` has no per-query value)."""
    kinds: list[tuple[type, list[Measure]]] = [
        (PytrecEval, [m for m in measures if PytrecEval.serves(m)]),
        (RecipRankAt, [m for m in measures if m.depth]),
        (Judged, [m for m in measures if m.judged]),
        (Relstring, [m for m in measures if m.family == "relstring"]),
    ]
    return [kind(qrels, chosen, level) for kind, chosen in kinds if chosen]


class PytrecEval:
    """trec_eval's C evaluator (through pytrec_eval) for every trec_eval measure but relstring and runid."""

    cutoffs: set[int] = set()

    def __init__(self, qrels: Qrels, measures: Sequence[Measure], level: int) -> None:
        """One C evaluator per layer of `pytrec_requests`, reused for every batch and run."""
        # pytrec_eval's Python wrapper passes only numeric parameters (no `ndcg.1=3,2=9`,
        # `utility.2,-1,0,0`, `iprec_at_recall..25`): use the C evaluator itself. Parameters are
        # checked by parse_measure first: a bad one makes it abort the process.
        from pytrec_eval_ext import RelevanceEvaluator

        self.measures = list(measures)
        requests, self.layer_of = pytrec_requests(self.measures)
        self.layers = [RelevanceEvaluator(query_relevance=qrels, measures=set(request), relevance_level=level,
                                          judged_docs_only_flag=False) for request in requests]

    @staticmethod
    def serves(measure: Measure) -> bool:
        """Whether pytrec_eval computes this measure (not Judged@k, MRR@k or a text measure)."""
        return not (measure.judged or measure.depth or measure.text)

    def score(self, batch: Batch, tops: Tops) -> Values:
        """pytrec_eval's values for the batch."""
        layers = [layer.evaluate(batch) for layer in self.layers]
        out: Values = {}
        for measure in self.measures:
            values, key = layers[self.layer_of[measure]], measure.result_key
            out[measure] = {qid: values[qid][key] for qid in batch}
        return out


def pytrec_requests(measures: Sequence[Measure]) -> tuple[list[list[str]], dict[Measure, int]]:
    """The measure strings for pytrec_eval evaluators, and which evaluator gives each measure.

    One evaluator takes one parameter list per family: the cutoffs and points of a family are
    merged into the first; each further variant of a one-value family (`ndcg` and `ndcg.1=3,2=9`)
    goes to the next evaluator without that family.
    """
    lists: dict[str, list[str]] = {}
    layers: list[dict[str, str]] = [{}]
    layer_of: dict[Measure, int] = {}
    for m in measures:
        if not PytrecEval.serves(m):
            continue
        if m.cutoff is not None or m.family in POINTS:
            token = str(m.cutoff) if m.cutoff is not None else str(m.param)
            tokens = lists.setdefault(m.family, [])
            if token not in tokens:
                tokens.append(token)
            layer_of[m] = 0
            continue
        request = m.family if m.param is None else f"{m.family}.{m.param}"
        index = next((i for i, layer in enumerate(layers) if layer.get(m.family, request) == request), len(layers))
        if index == len(layers):
            layers.append({})
        layers[index][m.family] = request
        layer_of[m] = index
    for family, tokens in lists.items():
        layers[0][family] = f"{family}.{','.join(tokens)}"
    return [sorted(layer.values()) for layer in layers if layer], layer_of


class RecipRankAt:
    """MRR@k: trec_eval's recip_rank on the top k docs of each query (`trec_eval -M k -m recip_rank`)."""

    def __init__(self, qrels: Qrels, measures: Sequence[Measure], level: int) -> None:
        """One recip_rank evaluator per depth k."""
        from pytrec_eval_ext import RelevanceEvaluator

        self.measures = list(measures)
        self.cutoffs = {m.depth for m in measures if m.depth}
        self.evaluators = {k: RelevanceEvaluator(query_relevance=qrels, measures={"recip_rank"},
                                                 relevance_level=level, judged_docs_only_flag=False)
                           for k in sorted(self.cutoffs)}

    def score(self, batch: Batch, tops: Tops) -> Values:
        """recip_rank of the top k docs, per depth k."""
        by_depth = {}
        for k, evaluator in self.evaluators.items():
            top = {qid: {d: docs[d] for d in tops[qid][k]} for qid, docs in batch.items()}
            by_depth[k] = {qid: got["recip_rank"] for qid, got in evaluator.evaluate(top).items()}
        return {m: dict(by_depth[m.depth]) for m in self.measures if m.depth}


class Judged:
    """Judged@k: the share of the top k docs that have a qrels label, any label."""

    def __init__(self, qrels: Qrels, measures: Sequence[Measure], level: int) -> None:
        """`level` is unused: any label counts as judged."""
        del level
        self.qrels = qrels
        self.measures = list(measures)
        self.cutoffs = {m.cutoff for m in measures if m.cutoff is not None}

    def score(self, batch: Batch, tops: Tops) -> Values:
        """Judged@k of every query of the batch."""
        return {m: {qid: judged_share(tops[qid][m.cutoff or 0], self.qrels[qid]) for qid in batch}
                for m in self.measures}


class Relstring:
    """trec_eval's relstring.N: the labels of a query's top N docs as a string."""

    cutoffs: set[int] = set()

    def __init__(self, qrels: Qrels, measures: Sequence[Measure], level: int) -> None:
        """`level` is unused: relstring shows the labels themselves."""
        del level
        self.qrels = qrels
        self.measures = list(measures)

    def score(self, batch: Batch, tops: Tops) -> Values:
        """The relstring of every query of the batch (10 docs unless a parameter says otherwise)."""
        return {m: {qid: relstring(top_k(docs, int(m.param or 10)), self.qrels[qid]) for qid, docs in batch.items()}
                for m in self.measures}


def relstring(top: Sequence[str], judged: dict[str, int]) -> str:
    """trec_eval's relstring of the top docs: each label as a digit, `>` above 9, `.` below 0, `-` unjudged."""
    chars = []
    for docid in top:
        rel = judged.get(docid)
        chars.append("-" if rel is None else "." if rel < 0 else ">" if rel > 9 else str(rel))
    return "".join(chars)


def judged_share(top: Sequence[str], judged: dict[str, int]) -> float:
    """Share of the docs in `top` that have a qrels label, any label (Judged@k of the top k)."""
    return sum(1 for docid in top if docid in judged) / len(top) if top else 0.0


def top_k(docs: dict[str, float], k: int) -> list[str]:
    """The top k docids in trec_eval's order (score descending, ties by docid descending)."""
    if len(docs) <= k:
        return [d for _, d in sorted(zip(docs.values(), docs, strict=True), reverse=True)]
    threshold = sorted(docs.values(), reverse=True)[k - 1]
    candidates = [(score, docid) for docid, score in docs.items() if score >= threshold]
    return [docid for _, docid in heapq.nlargest(k, candidates)]


def query_facts(docs: dict[str, float], cutoffs: Sequence[int]) -> tuple[int, dict[int, list[str]]]:
    """(number of hits tied with another hit, {k: the top k docids}) of one query, vectorized.

    The top k is a set in trec_eval's order (score descending, ties by docid descending), as `top_k`.
    """
    import numpy as np

    values = np.fromiter(docs.values(), dtype=np.float64, count=len(docs))
    ordered = np.sort(values)
    ties = int(np.count_nonzero(ordered[1:] == ordered[:-1]))
    tops: dict[int, list[str]] = {}
    keys: list[str] | None = None
    for k in cutoffs:
        if len(docs) <= k:
            tops[k] = list(docs)
            continue
        keys = keys or list(docs)
        picked = [keys[i] for i in np.flatnonzero(values >= ordered[len(docs) - k]).tolist()]
        if len(picked) > k:  # ties at the cut: trec_eval keeps the larger docids
            picked = [d for _, d in heapq.nlargest(k, [(docs[d], d) for d in picked])]
        tops[k] = picked
    return ties, tops

