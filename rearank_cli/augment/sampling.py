"""REARANK training samples from a run and graded qrels (spec section 6): what `rearank augment` draws.

Per query of the RUN: take its top `depth` candidates, draw `samples_per_query` distinct subsets of
`window` docs with a per-query `random.Random` (seeded from `seed` and the qid, so the output does not
depend on query order or sharding), present each subset in first-stage order, and score it:

- `r_init` = nDCG@10 of the subset in that order, `r_best` = nDCG@10 of its ideal order; linear gain
  (the label), log2(rank + 1) discount, IDCG over ALL judged docs of the query (`metrics.ndcg`), so
  `r_best < 1` when relevant docs lie outside the subset.
- Dropped (counted): duplicate draws, subsets with no relevant doc (label > 0), `r_init < min_init_ndcg`,
  and with `min_headroom` > 0 subsets whose `r_best - r_init` is below it (those in their ideal order too).

One row per kept sample (the field names are a contract read by `rearank train`; `formats.verl` lays the
same rows out for VeRL):

    qid, query            the query
    docids, passages      the sample in presented (first-stage) order; passages are the RAW doc texts,
                          `prompts.build_messages` cleans and truncates them for the prompt
    first_stage_ranks     1-based rank of each doc in the RUN (score descending, ties in file order)
    first_stage_scores    its RUN score
    labels                qrels label of each doc, 0 when unjudged
    r_init, r_best        as above; idcg = the query's ideal DCG@10 over all judged docs
                          (r_rerank of a permutation = metrics.dcg(permuted labels) / idcg)
    sample                0-based index of the kept sample within its query
    window                number of docs in the sample (= --window unless the query had fewer)
    prompt_name, prompt_hash   which prompt built `prompt` (prompts.prompt_hash)
    prompt                the chat messages `rearank rerank` would send for this window
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from rearank_cli.augment.blind import BlindAnswer, blind_line
from rearank_cli.errors import InputError
from rearank_cli.formats.trec import Hit, Qrels
from rearank_cli.metrics import ideal_dcg, ndcg
from rearank_cli.prompts import build_messages, get_family, prompt_hash
from rearank_cli.settings.commands import AugmentOptions as _O

log = logging.getLogger("rearank")


K = 10


# Query skip reasons (summary keys).
SKIP_NO_QRELS = "not in qrels"


SKIP_NO_TOPIC = "no query text"


SKIP_NO_RELEVANT = "no relevant doc in qrels"


SKIP_NONE_IN_DEPTH = "no relevant doc in the top depth"


SKIP_SHORT = "fewer candidates than the window (--skip-short)"


SKIP_EMPTY = "no candidates with text"




@dataclass(frozen=True)
class Settings:
    """What `rearank augment` samples; defaults (spec section 6) are `AugmentOptions`'."""

    samples_per_query: int = _O.samples_per_query
    window: int = _O.window
    depth: int = _O.depth
    min_init_ndcg: float = _O.min_init_ndcg
    prompt: str = _O.prompt
    seed: int = _O.seed
    skip_short: bool = _O.skip_short
    min_headroom: float = _O.min_headroom
    skip_missing: bool = _O.skip_missing
    attempts_per_sample: int = 10

    def validate(self) -> None:
        """Raise InputError (exit 2) for settings that cannot work."""
        if self.window < 1 or self.depth < 1 or self.samples_per_query < 1:
            raise InputError("--window, --depth and --samples-per-query must be at least 1")
        if self.window > self.depth:
            raise InputError(f"--window {self.window} is larger than --depth {self.depth}")
        if not 0.0 <= self.min_init_ndcg <= 1.0:
            raise InputError(f"--min-init-ndcg {self.min_init_ndcg} is outside [0, 1]")
        if not 0.0 <= self.min_headroom <= 1.0:
            raise InputError(f"--min-headroom {self.min_headroom} is outside [0, 1]")
        get_family(self.prompt)
        if self.attempts_per_sample < 1:
            raise InputError("attempts_per_sample must be at least 1")


@dataclass
class Summary:
    """Counts reported on stderr and in the summary JSON."""

    queries_in_run: int = 0
    queries_used: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_qids: dict[str, list[str]] = field(default_factory=dict)
    short_queries: int = 0
    queries_short_of_subsets: int = 0
    missing_docs: int = 0
    draws: int = 0
    distinct: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    kept: int = 0
    kept_per_query: dict[str, int] = field(default_factory=dict)
    labels: Counter[int] = field(default_factory=Counter)
    unjudged: int = 0
    sum_r_init: float = 0.0
    sum_r_best: float = 0.0
    blind: BlindAnswer = field(default_factory=BlindAnswer, repr=False)

    def skip(self, qid: str, reason: str) -> None:
        """Count a skipped query."""
        self.skipped[reason] += 1
        self.skipped_qids.setdefault(reason, []).append(qid)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, with the means."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "blind"}
        data["skipped_qids"] = {reason: list(qids) for reason, qids in self.skipped_qids.items()}
        data["kept_per_query"] = dict(self.kept_per_query)
        data["skipped"] = dict(self.skipped)
        data["dropped"] = dict(self.dropped)
        data["labels"] = {str(label): count for label, count in sorted(self.labels.items())}
        data["mean_r_init"] = self.sum_r_init / self.kept if self.kept else None
        data["mean_r_best"] = self.sum_r_best / self.kept if self.kept else None
        verdict = self.blind.verdict()
        data["blind_answer"] = verdict.to_json() if verdict else None
        return data


@dataclass
class Inputs:
    """What augment reads: the run, qrels, query texts and doc texts (only those needed)."""

    run: Mapping[str, list[Hit]]
    qrels: Qrels
    topics: Mapping[str, str]
    texts: Mapping[str, str]
    text_source: str


def query_seed(seed: int, qid: str) -> int:
    """A per-query seed from the global seed and the qid (independent of query order and sharding)."""
    digest = hashlib.sha256(f"rearank-augment\x00{seed}\x00{qid}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def draw_subsets(
    n: int, size: int, count: int, rng: random.Random, max_attempts: int
) -> tuple[list[tuple[int, ...]], int]:
    """Up to `count` distinct sorted `size`-subsets of `range(n)`, and the number of duplicate draws.

    When `range(n)` has at most `count` such subsets, all of them are returned (in lexicographic order,
    no randomness needed). Otherwise draws stop after `max_attempts`, possibly with fewer than `count`.
    """
    if math.comb(n, size) <= count:
        return list(itertools.combinations(range(n), size)), 0
    seen: set[tuple[int, ...]] = set()
    subsets: list[tuple[int, ...]] = []
    duplicates = 0
    for _ in range(max_attempts):
        subset = tuple(sorted(rng.sample(range(n), size)))
        if subset in seen:
            duplicates += 1
            continue
        seen.add(subset)
        subsets.append(subset)
        if len(subsets) == count:
            break
    return subsets, duplicates


def sample_scores(labels: Sequence[int], judged: Iterable[int]) -> tuple[float, float]:
    """`(r_init, r_best)`: nDCG@10 of `labels` as presented and in their ideal order (spec section 6)."""
    judged = list(judged)
    return ndcg(labels, judged, K), ndcg(sorted(labels, reverse=True), judged, K)


def candidate_list(qid: str, hits: Sequence[Hit], inputs: Inputs, settings: Settings,
                   summary: Summary) -> list[tuple[str, float, int]]:
    """`[(docid, score, rank)]`: the query's top `depth` docs that have text (1-based RUN ranks)."""
    result = []
    for rank, (docid, score) in enumerate(hits[: settings.depth], 1):
        if docid in inputs.texts:
            result.append((docid, score, rank))
        elif settings.skip_missing:
            summary.missing_docs += 1
        else:
            raise InputError(
                f"document {docid!r} (query {qid!r}, rank {rank}) has no text here "
                "(use --skip-missing to drop such documents)",
                inputs.text_source,
            )
    return result


def low_init_reason(settings: Settings) -> str:
    """The drop reason of samples below --min-init-ndcg."""
    return f"r_init < {settings.min_init_ndcg:g}"


def low_headroom_reason(settings: Settings) -> str:
    """The drop reason of samples below --min-headroom."""
    return f"r_best - r_init < {settings.min_headroom:g}"


def query_skip_reason(qid: str, inputs: Inputs) -> str | None:
    """Why a RUN query cannot be used before looking at its candidates, or None."""
    if qid not in inputs.qrels:
        return SKIP_NO_QRELS
    if qid not in inputs.topics:
        return SKIP_NO_TOPIC
    if not any(label > 0 for label in inputs.qrels[qid].values()):
        return SKIP_NO_RELEVANT
    return None


def query_rows(qid: str, inputs: Inputs, settings: Settings, summary: Summary) -> Iterator[dict[str, Any]]:
    """The kept samples of one query, as rows (counting everything in `summary`)."""
    reason = query_skip_reason(qid, inputs)
    cands = [] if reason else candidate_list(qid, inputs.run[qid], inputs, settings, summary)
    judged = inputs.qrels.get(qid, {})
    if reason is None and not cands:
        reason = SKIP_EMPTY
    if reason is None and not any(judged.get(docid, 0) > 0 for docid, _, _ in cands):
        reason = SKIP_NONE_IN_DEPTH
    if reason is None and len(cands) < settings.window and settings.skip_short:
        reason = SKIP_SHORT
    if reason is not None:
        summary.skip(qid, reason)
        return
    summary.queries_used += 1
    size = min(settings.window, len(cands))
    summary.short_queries += size < settings.window
    rng = random.Random(query_seed(settings.seed, qid))
    count = settings.samples_per_query
    subsets, duplicates = draw_subsets(len(cands), size, count, rng, count * settings.attempts_per_sample)
    summary.draws += len(subsets) + duplicates
    summary.distinct += len(subsets)
    summary.dropped["duplicate draw"] += duplicates
    summary.queries_short_of_subsets += len(subsets) < count
    query = inputs.topics[qid]
    idcg = ideal_dcg(judged.values(), K)
    kept = 0
    for subset in subsets:
        docs = [cands[i] for i in subset]
        labels = [judged.get(docid, 0) for docid, _, _ in docs]
        if not any(label > 0 for label in labels):
            summary.dropped["no relevant doc"] += 1
            continue
        r_init, r_best = sample_scores(labels, judged.values())
        if r_init < settings.min_init_ndcg:
            summary.dropped[low_init_reason(settings)] += 1
            continue
        if settings.min_headroom > 0 and r_best - r_init < settings.min_headroom:
            summary.dropped[low_headroom_reason(settings)] += 1
            continue
        passages = [inputs.texts[docid] for docid, _, _ in docs]
        summary.kept += 1
        summary.sum_r_init += r_init
        summary.sum_r_best += r_best
        summary.blind.add(labels, idcg, r_init, r_best)
        summary.labels.update(labels)
        summary.unjudged += sum(docid not in judged for docid, _, _ in docs)
        yield {
            "qid": qid,
            "query": query,
            "docids": [docid for docid, _, _ in docs],
            "passages": passages,
            "first_stage_ranks": [rank for _, _, rank in docs],
            "first_stage_scores": [score for _, score, _ in docs],
            "labels": labels,
            "r_init": r_init,
            "r_best": r_best,
            "idcg": idcg,
            "sample": kept,
            "window": size,
            "prompt_name": settings.prompt,
            "prompt_hash": prompt_hash(settings.prompt),
            "prompt": build_messages(settings.prompt, query, passages),
        }
        kept += 1
    summary.kept_per_query[qid] = kept


def build_rows(inputs: Inputs, settings: Settings, summary: Summary,
               progress: Callable[[int], object] | None = None) -> Iterator[dict[str, Any]]:
    """All kept samples, queries in RUN order (`progress(1)` after each query); warns once about queries
    missing from qrels or topics."""
    settings.validate()
    summary.queries_in_run = len(inputs.run)
    for reason in ("duplicate draw", "no relevant doc", low_init_reason(settings)):
        summary.dropped.setdefault(reason, 0)
    for qid in list(inputs.run):
        yield from query_rows(qid, inputs, settings, summary)
        if progress is not None:
            progress(1)
    for reason in (SKIP_NO_QRELS, SKIP_NO_TOPIC):
        qids = summary.skipped_qids.get(reason, [])
        if qids:
            shown = ", ".join(qids[:5]) + (", ..." if len(qids) > 5 else "")
            log.warning("skipped %d run query(ies) %s: %s", len(qids), reason, shown)


def summary_lines(summary: Summary, settings: Settings) -> list[str]:
    """The human summary printed on stderr."""
    skipped = sum(summary.skipped.values())
    reasons = "; ".join(f"{count} {reason}" for reason, count in summary.skipped.most_common())
    lines = [f"queries: {summary.queries_in_run} in run, {summary.queries_used} used, {skipped} skipped"
             + (f" ({reasons})" if reasons else "")]
    if summary.short_queries:
        lines.append(f"{summary.short_queries} used quer(ies) had fewer than {settings.window} candidates")
    if summary.queries_short_of_subsets:
        lines.append(f"{summary.queries_short_of_subsets} quer(ies) yielded fewer than "
                     f"{settings.samples_per_query} distinct subsets")
    if summary.missing_docs:
        lines.append(f"{summary.missing_docs} candidate doc(s) without text dropped (--skip-missing)")
    drops = ", ".join(f"{count} {reason}" for reason, count in summary.dropped.items())
    lines.append(f"samples: {summary.draws} drawn, {summary.distinct} distinct, {summary.kept} kept"
                 + (f"; dropped: {drops}" if drops else ""))
    per_query = sorted(summary.kept_per_query.values())
    if per_query:
        lines.append(f"kept per used query: min {per_query[0]}, median {per_query[len(per_query) // 2]}, "
                     f"max {per_query[-1]}; {sum(n > 0 for n in per_query)} queries with samples")
    labels = ", ".join(f"{label}: {count}" for label, count in sorted(summary.labels.items()))
    if summary.kept:
        lines.append(f"labels of kept passages: {labels} ({summary.unjudged} of the 0s unjudged)")
        lines.append(f"mean r_init {summary.sum_r_init / summary.kept:.4f}, "
                     f"mean r_best {summary.sum_r_best / summary.kept:.4f}")
    verdict = summary.blind.verdict()
    if verdict is not None:
        lines.append(blind_line(verdict))
    return lines
