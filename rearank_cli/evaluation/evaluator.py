"""`Evaluator(qrels, measures, level)`: trec_eval -c numbers for runs in memory or in files.

An in-memory run is `{qid: {docid: score}}` (or `{qid: [(docid, score), ...]}`, as `read_run` gives).
`evaluate_file` wraps the same scoring around the file readers: a run whose lines are grouped by query
is streamed query by query (a few MiB of memory at a time); any other run, stdin and pipes are read
whole. Queries are measured in batches by the providers (pytrec_eval beside Judged@k, MRR@k and
relstring) and summarised as trec_eval -c does (`aggregate.Summary`). `evaluate()` is the one-call
form the public API exports.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from rearank_cli.errors import InputError, RunNotGrouped
from rearank_cli.evaluation.aggregate import Summary
from rearank_cli.evaluation.measures import Measure, parse_measures
from rearank_cli.evaluation.providers import providers, query_facts, top_k
from rearank_cli.formats.trec import Qrels, iter_run_queries, read_qrels, read_run_scores

log = logging.getLogger("rearank")

#: a run in memory: `{qid: {docid: score}}`, or `{qid: [(docid, score), ...]}`
RunScores = Mapping[str, Mapping[str, float]] | Mapping[str, Sequence[tuple[str, float]]]


@dataclass
class RunResult:
    """Per-query values and -c means of one run, plus what was found while reading it."""

    path: str
    measures: list[Measure]
    per_query: dict[Measure, dict[str, float | str]]
    means: dict[Measure, float]
    missed: list[str]
    extra_queries: int = 0
    hits: int = 0
    tied_hits: int = 0
    tied_queries: int = 0
    excluded: int = 0
    answered: set[str] = field(default_factory=set)
    tag: str | None = None

    def value(self, measure: Measure, qid: str) -> float | str | None:
        """Per-query value with -c semantics: 0 for a missing query (None for Judged@k, undefined there;
        text for runid / relstring)."""
        got = self.per_query[measure].get(qid)
        if got is None and not measure.judged:
            return 0.0
        return got

    def number(self, measure: Measure, qid: str) -> float:
        """`value` of a numeric measure defined for every query (not Judged@k, not a text measure)."""
        got = self.value(measure, qid)
        if not isinstance(got, float | int):
            raise TypeError(f"{measure.name} has no number for query {qid!r}")
        return float(got)


class Evaluator:
    """The measures of one qrels at one relevance level, reused across runs."""

    def __init__(self, qrels: Qrels, measures: Sequence[Measure], level: int = 1, *, max_docs: int | None = None,
                 exclude: dict[str, set[str]] | None = None, complete: bool = True) -> None:
        """`max_docs`: trec_eval -M (the top N docs of each query are kept before every measure);
        `exclude`: (qid, docid) pairs dropped from each run first (BRIGHT's excluded_ids); `complete`:
        trec_eval -c (the default: means over every qrels query; False: over the queries a run answers)."""
        if max_docs is not None and max_docs < 1:
            raise InputError("-M must be at least 1")
        self.qrels = qrels
        self.qids = sorted(qrels)
        self.measures = list(measures)
        self.level = level
        self.max_docs = max_docs
        self.exclude = exclude or {}
        self.providers = providers(qrels, self.measures, level)
        self.cutoffs = sorted({k for provider in self.providers for k in provider.cutoffs})
        self.summary = Summary(qrels, level, complete)

    def evaluate(self, run: RunScores, name: str = "<run>", tag: str | None = None) -> RunResult:
        """Evaluate a run in memory; `name` is how messages and results call it."""
        return self._score(name, ((qid, _scores(qid, docs, name)) for qid, docs in run.items()), tag=tag)

    def evaluate_file(self, path: str, batch_hits: int = 200_000) -> RunResult:
        """Evaluate one run file (`-` = stdin, gzip ok); streams it when it is grouped by query."""
        info: dict[str, Any] = {}
        if path != "-" and os.path.isfile(path):  # a pipe cannot be read twice: read it whole
            try:
                return self._score(path, iter_run_queries(path, info=info), batch_hits, info)
            except RunNotGrouped:
                log.debug("%s: queries are not grouped; reading the whole run", path)
        return self._score(path, iter(read_run_scores(path, info=info).items()), batch_hits, info)

    def _score(self, path: str, queries: Iterator[tuple[str, dict[str, float]]], batch_hits: int = 200_000,
               info: dict[str, Any] | None = None, tag: str | None = None) -> RunResult:
        result = RunResult(path, self.measures, {m: {} for m in self.measures}, {}, [])
        self._collect(queries, result, batch_hits)
        result.tag = (info or {}).get("tag", tag)
        return self._finish(result)

    def _select(self, qid: str, docs: dict[str, float], result: RunResult) -> dict[str, float]:
        """The docs of a query that are measured: --exclude pairs dropped, then the top -M kept."""
        dropped = self.exclude.get(qid)
        if dropped and not dropped.isdisjoint(docs):
            kept = {d: s for d, s in docs.items() if d not in dropped}
            result.excluded += len(docs) - len(kept)
            docs = kept
        if self.max_docs is not None and len(docs) > self.max_docs:
            docs = {d: docs[d] for d in top_k(docs, self.max_docs)}
        return docs

    def _collect(self, queries: Iterable[tuple[str, dict[str, float]]], result: RunResult, batch_hits: int) -> None:
        """Measure queries in batches into `result`."""
        batch: dict[str, dict[str, float]] = {}
        tops: dict[str, dict[int, list[str]]] = {}
        size = 0
        for qid, docs in queries:
            docs = self._select(qid, docs, result)
            if not docs:  # every doc excluded: the query is missing, as in trec_eval
                continue
            result.hits += len(docs)
            ties, top = query_facts(docs, self.cutoffs)
            if ties:
                result.tied_hits += ties
                result.tied_queries += 1
            if qid not in self.qrels:
                result.extra_queries += 1
                continue
            batch[qid], tops[qid] = docs, top
            size += len(docs)
            if size >= batch_hits:
                self._measure(batch, tops, result)
                batch, tops, size = {}, {}, 0
        self._measure(batch, tops, result)

    def _measure(self, batch: dict[str, dict[str, float]], tops: dict[str, dict[int, list[str]]],
                 result: RunResult) -> None:
        """Per-query values of a batch of queries (all of them in the qrels); `tops`: their top-k docids."""
        if not batch:
            return
        result.answered.update(batch)
        for provider in self.providers:
            for measure, values in provider.score(batch, tops).items():
                result.per_query[measure].update(values)

    def _finish(self, result: RunResult) -> RunResult:
        if not result.answered:
            raise InputError(
                f"none of the run's queries is in the qrels ({len(self.qrels)} queries): "
                "wrong qrels or wrong run file?", result.path,
            )
        result.missed = [qid for qid in self.qids if qid not in result.answered]
        for measure in self.measures:
            if not measure.text:
                numbers = cast(dict[str, float], result.per_query[measure])  # only text measures hold str
                result.means[measure] = self.summary.mean(measure, numbers)
        return result


def _scores(qid: str, docs: Mapping[str, float] | Sequence[tuple[str, float]], name: str) -> dict[str, float]:
    """One query of an in-memory run as `{docid: score}`; a repeated docid or a non-finite score is an error."""
    pairs = list(docs.items()) if isinstance(docs, Mapping) else list(docs)
    out: dict[str, float] = {}
    for docid, score in pairs:
        key = str(docid)
        try:
            value = float(score)
        except (TypeError, ValueError):
            raise InputError(f"query {qid!r}: score of {key!r} is not a number ({score!r})", name) from None
        if not math.isfinite(value):
            raise InputError(f"query {qid!r}: score of {key!r} is not finite ({score!r})", name)
        if key in out:
            raise InputError(f"query {qid!r}: docid {key!r} appears twice", name)
        out[key] = value
    return out


def _labels(qrels: Mapping[str, Mapping[str, int]]) -> Qrels:
    """In-memory qrels as `{qid: {docid: int label}}`; a label that is not an integer is an error."""
    out: Qrels = {}
    for qid, judged in qrels.items():
        out[str(qid)] = {}
        for docid, label in judged.items():
            if isinstance(label, bool) or not (isinstance(label, int) or str(label).lstrip("-").isdigit()):
                raise InputError(f"qrels query {qid!r}: label of {docid!r} is not an integer ({label!r})")
            out[str(qid)][str(docid)] = int(label)
    return out


# ---------------------------------------------------------------- qrels


def load_qrels(path: str, level: int) -> Qrels:
    """Read qrels and check them (`check_qrels`)."""
    return check_qrels(read_qrels(path), level, path)


def check_qrels(qrels: Qrels, level: int, source: str | None = None) -> Qrels:
    """Refuse empty qrels; warn about queries without a relevant doc (at all, or at level -l)."""
    if not qrels:
        raise InputError("qrels are empty", source)
    empty = [qid for qid, judged in qrels.items() if not any(rel > 0 for rel in judged.values())]
    if empty:  # trec_eval scores them (every measure 0) and counts them in every mean: so do we
        shown = ", ".join(repr(q) for q in empty[:5]) + (" ..." if len(empty) > 5 else "")
        log.warning("%s: %d qrels quer%s no relevant document (every label <= 0): %s; every measure is 0 there "
                    "and they count in every mean, as in trec_eval", source or "qrels", len(empty),
                    "y has" if len(empty) == 1 else "ies have", shown)
    if level > 1:
        below = [qid for qid, judged in qrels.items() if not any(rel >= level for rel in judged.values())]
        if below:
            log.warning("%s: %d of %d queries have no doc at relevance level >= %d: "
                        "binary measures are 0 for them", source or "qrels", len(below), len(qrels), level)
    return qrels


# ---------------------------------------------------------------- the one-call form


def evaluate(run: RunScores | str | os.PathLike[str], qrels: Mapping[str, Mapping[str, int]] | str | os.PathLike[str],
             measures: Iterable[str | Measure] = ("nDCG@10",), level: int = 1) -> dict[str, float]:
    """trec_eval -c means of one run: `{measure name: mean}` (names as `rearank eval` shows them: nDCG@10).

    `run`: `{qid: {docid: score}}`, `{qid: [(docid, score), ...]}` or a run file; `qrels`:
    `{qid: {docid: label}}` or a qrels file (TREC or BEIR TSV); `measures`: any names `rearank eval -m`
    takes (or Measure objects); `level`: trec_eval -l. Text measures (runid, relstring) have no mean
    and are left out. Bad input raises `rearank_cli.errors.InputError`.
    """
    chosen = _measures(measures)
    if isinstance(qrels, str | os.PathLike):
        judged = load_qrels(str(qrels), level)
    else:
        judged = check_qrels(_labels(qrels), level)
    evaluator = Evaluator(judged, chosen, level)
    if isinstance(run, str | os.PathLike):
        result = evaluator.evaluate_file(os.fspath(run))
    else:
        result = evaluator.evaluate(run)
    return {m.name: result.means[m] for m in chosen if not m.text}


def _measures(measures: Iterable[str | Measure]) -> list[Measure]:
    """Measure objects as given, names parsed (in order, without repeats)."""
    items = [measures] if isinstance(measures, str | Measure) else list(measures)
    out: list[Measure] = []
    for item in items:
        for measure in [item] if isinstance(item, Measure) else parse_measures([item]):
            if measure not in out:
                out.append(measure)
    if not out:
        raise InputError("no measure given")
    return out
