"""`rearank eval`: trec_eval-exact evaluation, run comparison and significance.

Measures come from pytrec_eval (trec_eval's own C code). Means follow `trec_eval -c`: the sum of the
per-query values of the queries in both run and qrels, in qid order as trec_eval adds them, divided by
the number of qrels queries, so a query missing from the run counts 0. Judged@k (the share of the top-k
docs that have a qrels label) is computed here, over the queries the run answers. Runs are streamed
query by query (few MiB of memory at a time) when their lines are grouped by query, else read whole;
with `jobs=2` a plain file is read and evaluated as two halves in two processes.
pytrec_eval, numpy and scipy are imported lazily.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import pickle
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from rearank_cli.errors import InputError
from rearank_cli.formats.trec import Qrels, RunNotGrouped, iter_run_queries, read_qrels, read_run_scores
from rearank_cli.provenance import versions

log = logging.getLogger("rearank")

DEFAULT_MEASURES = ("nDCG@10", "nDCG@5", "MAP@1000", "R@100", "Judged@10")

# trec_eval's measure table, in the order it prints measures.
TREC_ORDER = (
    "map", "gm_map", "Rprec", "bpref", "recip_rank", "iprec_at_recall", "P", "relstring", "recall",
    "infAP", "gm_bpref", "Rprec_mult", "utility", "11pt_avg", "binG", "G", "ndcg", "ndcg_rel", "Rndcg",
    "ndcg_cut", "map_cut", "relative_P", "success", "set_P", "set_relative_P", "set_recall", "set_map",
    "set_F",
)
# trec_eval measures that are per-query means (what -c aggregation applies to) without a cutoff.
PLAIN = (
    "map", "Rprec", "bpref", "recip_rank", "infAP", "11pt_avg", "binG", "G", "ndcg", "ndcg_rel",
    "Rndcg", "set_P", "set_relative_P", "set_recall", "set_map", "set_F",
)
_TREC_CUTOFFS = (5, 10, 15, 20, 30, 100, 200, 500, 1000)
# cutoff families and the cutoffs trec_eval uses when none is given.
CUTOFF = {
    "P": _TREC_CUTOFFS, "recall": _TREC_CUTOFFS, "ndcg_cut": _TREC_CUTOFFS, "map_cut": _TREC_CUTOFFS,
    "relative_P": _TREC_CUTOFFS, "success": (1, 5, 10),
}
JUDGED = "judged"
# short forms: name@k -> family with cutoff k; bare name -> plain measure.
SHORT_CUT = {"ndcg": "ndcg_cut", "map": "map_cut", "r": "recall", "recall": "recall", "p": "P",
             "mrr": "recip_rank", "judged": JUDGED, "success": "success"}
SHORT_PLAIN = {"ndcg": "ndcg", "map": "map", "mrr": "recip_rank"}
DISPLAY = {"ndcg_cut": "nDCG@{}", "map_cut": "MAP@{}", "recall": "R@{}", "P": "P@{}", "recip_rank": "MRR@{}",
           JUDGED: "Judged@{}", "success": "Success@{}", "ndcg": "nDCG", "map": "MAP"}
_FAMILIES = {name.lower(): name for name in (*PLAIN, *CUTOFF, JUDGED)}
TIE_EPSILON = 1e-12


@dataclass(frozen=True)
class Measure:
    """One measure: a trec_eval family with an optional cutoff, or MRR@k (recip_rank on the top k)."""

    family: str
    cutoff: int | None = None

    @property
    def depth(self) -> int | None:
        """Docs kept per query before measuring (trec_eval -M): only for MRR@k."""
        return self.cutoff if self.family == "recip_rank" else None

    @property
    def request(self) -> str:
        """The measure as pytrec_eval takes it (`ndcg_cut.10`)."""
        return self.family if self.cutoff is None or self.depth else f"{self.family}.{self.cutoff}"

    @property
    def key(self) -> str:
        """trec_eval's output name (`ndcg_cut_10`; MRR@10 is `recip_rank` with `-M 10`)."""
        return self.family if self.cutoff is None or self.depth else f"{self.family}_{self.cutoff}"

    @property
    def name(self) -> str:
        """The display name: the common short form where there is one (`nDCG@10`)."""
        template = DISPLAY.get(self.family)
        if self.family == "recip_rank" and self.cutoff is None:
            return "MRR"
        if template is None or ("{}" in template) != (self.cutoff is not None):
            return self.key
        return template.format(self.cutoff)

    @property
    def judged(self) -> bool:
        """Whether this is Judged@k, computed here rather than by trec_eval."""
        return self.family == JUDGED

    def trec_rank(self) -> tuple[int, int]:
        """Position in trec_eval's output order (Judged@k last, as pyserini prints it)."""
        base = TREC_ORDER.index(self.family) if self.family in TREC_ORDER else len(TREC_ORDER)
        return base, self.cutoff or 0


def valid_measures() -> str:
    """The accepted measure names, for error messages and --help."""
    return (
        "short forms nDCG@k, nDCG, MAP, MAP@k, R@k, P@k, MRR, MRR@k, Judged@k, Success@k; "
        "trec_eval names " + ", ".join(PLAIN) + ", " + ", ".join(f"{f}.k" for f in CUTOFF) + ", judged.k "
        "(a family without .k takes trec_eval's default cutoffs; .k1,k2 lists several)"
    )


def parse_measures(texts: Iterable[str]) -> list[Measure]:
    """Measures from trec_eval names or short forms, in the order given, without repeats."""
    measures: list[Measure] = []
    for text in texts:
        for part in _split_list(text):
            for measure in parse_measure(part):
                if measure not in measures:
                    measures.append(measure)
    if not measures:
        raise InputError("no measure given; valid: " + valid_measures())
    return measures


def _split_list(text: str) -> list[str]:
    """`ndcg_cut.5,10` stays whole (trec_eval's list); `nDCG@10,MAP` splits into two measures."""
    if re.fullmatch(r".*[._]\d+(,\d+)+", text.strip()):
        return [text.strip()]
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_measure(text: str) -> list[Measure]:
    """One measure name (`nDCG@10`, `ndcg_cut.10`, `ndcg_cut.5,10`, `P`) -> its measures."""
    short = re.fullmatch(r"([A-Za-z]+)@(\d+)", text)
    if short and short.group(1).lower() in SHORT_CUT:
        return [Measure(SHORT_CUT[short.group(1).lower()], _cutoff(short.group(2), text))]
    if text.lower() in SHORT_PLAIN and text not in _FAMILIES.values():
        return [Measure(SHORT_PLAIN[text.lower()])]
    family = _FAMILIES.get(text.lower())
    if family is not None:
        return _whole_family(family, text)
    trec = re.fullmatch(r"([A-Za-z_]+)[._](\d+(?:,\d+)*)", text)
    family = _FAMILIES.get(trec.group(1).lower()) if trec else None
    if trec is None or family is None or family in PLAIN:
        raise InputError(f"unknown measure {text!r}; valid: {valid_measures()}")
    return [Measure(family, _cutoff(k, text)) for k in trec.group(2).split(",")]


def _whole_family(family: str, text: str) -> list[Measure]:
    if family in PLAIN:
        return [Measure(family)]
    if family == JUDGED:
        raise InputError(f"measure {text!r} needs a cutoff, e.g. Judged@10 or judged.10")
    return [Measure(family, k) for k in CUTOFF[family]]


def _cutoff(digits: str, text: str) -> int:
    value = int(digits)
    if value < 1:
        raise InputError(f"measure {text!r}: the cutoff must be at least 1")
    return value


# ---------------------------------------------------------------- evaluating one run


@dataclass
class RunResult:
    """Per-query values and -c means of one run, plus what was found while reading it."""

    path: str
    measures: list[Measure]
    per_query: dict[Measure, dict[str, float]]
    means: dict[Measure, float]
    missed: list[str]
    extra_queries: int = 0
    hits: int = 0
    tied_hits: int = 0
    tied_queries: int = 0
    comparison: dict[Measure, Comparison] = field(default_factory=dict)

    def value(self, measure: Measure, qid: str) -> float | None:
        """Per-query value with -c semantics: 0 for a missing query (None for Judged@k, undefined there)."""
        got = self.per_query[measure].get(qid)
        if got is None and not measure.judged:
            return 0.0
        return got


class Evaluator:
    """pytrec_eval evaluators for a qrels file and a measure list, reused across runs."""

    def __init__(self, qrels: Qrels, measures: Sequence[Measure], level: int = 1) -> None:
        import pytrec_eval

        self.qrels = qrels
        self.qids = sorted(qrels)
        self.measures = list(measures)
        self.level = level
        self.cutoffs = sorted({m.cutoff for m in measures if m.judged or m.depth})  # type: ignore[type-var]
        trec = sorted({m.request for m in measures if not m.judged and not m.depth})
        self.main = pytrec_eval.RelevanceEvaluator(qrels, trec, relevance_level=level) if trec else None
        depths = sorted({m.depth for m in measures if m.depth})
        self.truncated = {k: pytrec_eval.RelevanceEvaluator(qrels, ["recip_rank"], relevance_level=level)
                          for k in depths}

    def evaluate(self, path: str, batch_hits: int = 200_000, jobs: int | None = None) -> RunResult:
        """Evaluate one run file (`-` = stdin, gzip ok); streams it when it is grouped by query.

        `jobs` = 2 evaluates the two halves of a plain file in two processes (worth it for big runs
        when a second core is really free); any surprise there falls back to one process.
        """
        if _jobs(path, jobs) >= 2:
            try:
                return self._finish(self._split(path, batch_hits))
            except _Fallback as why:
                log.debug("%s: evaluating in one process (%s)", path, why)
        if path != "-" and os.path.isfile(path):  # a pipe cannot be read twice: read it whole
            try:
                return self._scan(path, iter_run_queries(path), batch_hits)
            except RunNotGrouped:
                log.debug("%s: queries are not grouped; reading the whole run", path)
        return self._scan(path, iter(read_run_scores(path).items()), batch_hits)

    def _scan(self, path: str, queries: Iterator[tuple[str, dict[str, float]]], batch_hits: int) -> RunResult:
        result = RunResult(path, self.measures, {m: {} for m in self.measures}, {}, [])
        self._collect(queries, result, batch_hits, set())
        return self._finish(result)

    def _collect(self, queries: Iterable[tuple[str, dict[str, float]]], result: RunResult, batch_hits: int,
                 seen: set[str]) -> None:
        """Measure queries in batches into `result`; `seen` gets every qid."""
        batch: dict[str, dict[str, float]] = {}
        tops: dict[str, dict[int, list[str]]] = {}
        size = 0
        for qid, docs in queries:
            seen.add(qid)
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

    def _split(self, path: str, batch_hits: int) -> RunResult:
        """Evaluate [0, mid) here and [mid, end) in a forked child; merge the query cut by `mid`."""
        mid, end = _split_point(path)
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(read_end)
            os.close(write_end)
            raise _Fallback(f"cannot fork ({exc})") from exc
        if pid == 0:  # the child: report its half through the pipe, never return
            os.close(read_end)
            _child(write_end, lambda: self._half(path, (mid, end), batch_hits, hold_first=True))
        os.close(write_end)
        try:
            mine = self._half(path, (0, mid), batch_hits, hold_first=False)
        finally:
            with os.fdopen(read_end, "rb") as pipe:
                payload = pipe.read()
            os.waitpid(pid, 0)
        status, theirs = pickle.loads(payload) if payload else ("error", "no answer")
        if status != "ok":
            raise _Fallback(f"second half: {theirs}")
        return self._merge(mine, theirs, batch_hits)

    def _half(self, path: str, span: tuple[int, int], batch_hits: int, hold_first: bool) -> _Half:
        """One half of a run, measured except its boundary query (held back raw)."""
        result = RunResult(path, self.measures, {m: {} for m in self.measures}, {}, [])
        queries = iter_run_queries(path, span)
        seen: set[str] = set()
        try:
            if hold_first:
                held = next(queries, None)
                self._collect(queries, result, batch_hits, seen)
            else:
                holder: list[tuple[str, dict[str, float]]] = []
                self._collect(_all_but_last(queries, holder), result, batch_hits, seen)
                held = holder[0] if holder else None
        except RunNotGrouped as exc:
            raise _Fallback("queries are not grouped") from exc
        return _Half(result, held, seen)

    def _merge(self, first: _Half, second: _Half, batch_hits: int) -> RunResult:
        """Both halves as one result; the boundary query (split by the cut or not) is measured here."""
        held = [h for h in (first.held, second.held) if h is not None]
        if len(held) == 2 and held[0][0] == held[1][0]:
            if not held[0][1].keys().isdisjoint(held[1][1]):
                raise _Fallback("a docid repeats across the cut")
            held = [(held[0][0], {**held[0][1], **held[1][1]})]
        first_all = first.seen | ({first.held[0]} if first.held else set())
        second_all = second.seen | ({second.held[0]} if second.held else set())
        cut_query = {first.held[0]} if first.held and second.held and first.held[0] == second.held[0] else set()
        if (first_all & second_all) - cut_query:
            raise _Fallback("queries are not grouped")
        result, other = first.result, second.result
        for measure, values in other.per_query.items():
            result.per_query[measure].update(values)
        result.hits += other.hits
        result.tied_hits += other.tied_hits
        result.tied_queries += other.tied_queries
        result.extra_queries += other.extra_queries
        self._collect(held, result, batch_hits, set())
        return result

    def _measure(self, batch: dict[str, dict[str, float]], tops: dict[str, dict[int, list[str]]],
                 result: RunResult) -> None:
        """Per-query values of a batch of queries (all of them in the qrels); `tops`: their top-k docids."""
        if not batch:
            return
        values = self.main.evaluate(batch) if self.main else {}
        for depth, evaluator in self.truncated.items():
            top = {qid: {d: docs[d] for d in tops[qid][depth]} for qid, docs in batch.items()}
            for qid, got in evaluator.evaluate(top).items():
                values.setdefault(qid, {})[f"recip_rank@{depth}"] = got["recip_rank"]
        for measure in self.measures:
            store = result.per_query[measure]
            if measure.judged:
                for qid in batch:
                    store[qid] = judged_share(tops[qid][measure.cutoff or 0], self.qrels[qid])
            else:
                key = f"recip_rank@{measure.depth}" if measure.depth else measure.key
                for qid in batch:
                    store[qid] = values[qid][key]

    def _finish(self, result: RunResult) -> RunResult:
        first = self.measures[0]
        answered = result.per_query[first]
        if not answered:
            raise InputError(
                f"none of the run's queries is in the qrels ({len(self.qrels)} queries): "
                "wrong qrels or wrong run file?", result.path,
            )
        result.missed = [qid for qid in self.qids if qid not in answered]
        for measure in self.measures:
            result.means[measure] = mean_c(result.per_query[measure], self.qids, measure.judged)
        return result


class _Fallback(Exception):
    """The two-process path gives up; the run is evaluated in one process instead."""


@dataclass
class _Half:
    result: RunResult
    held: tuple[str, dict[str, float]] | None
    seen: set[str]


def _jobs(path: str, jobs: int | None) -> int:
    """Processes for one run: 2 only when asked, for a plain (not gzip) file, with fork, no JVM, no thread."""
    if (not jobs or jobs < 2 or path == "-" or not hasattr(os, "fork") or "jnius" in sys.modules
            or threading.active_count() > 1):
        return 1
    try:
        if not os.path.isfile(path):  # a pipe (`<(zcat run.gz)`) must not lose the bytes peeked below
            return 1
        with open(path, "rb") as handle:
            return 1 if handle.read(2) == b"\x1f\x8b" else 2
    except OSError:
        return 1  # the one-process path reports it


def _split_point(path: str) -> tuple[int, int]:
    """(offset just after the first newline past the middle, file size)."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        handle.seek(size // 2)
        tail = handle.read(1 << 20)
    cut = tail.find(b"\n")
    if cut < 0 or size // 2 + cut + 1 >= size:
        raise _Fallback("no line break past the middle")
    return size // 2 + cut + 1, size


def _all_but_last(items: Iterator, holder: list) -> Iterator:
    """Yield all items but the last, which goes into `holder`."""
    previous = next(items, None)
    if previous is None:
        return
    for item in items:
        yield previous
        previous = item
    holder.append(previous)


def _child(fd: int, work) -> None:
    """In a forked child: send ("ok", work()) or ("error", why) through `fd`, then exit at once."""
    try:
        try:
            payload = pickle.dumps(("ok", work()), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # noqa: BLE001 - anything: the parent redoes the work itself
            payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(payload)
    finally:
        os._exit(0)


def mean_c(values: dict[str, float], qids: Sequence[str], judged: bool = False) -> float:
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


def top_k(docs: dict[str, float], k: int) -> list[str]:
    """The top k docids in trec_eval's order (score descending, ties by docid descending)."""
    if len(docs) <= k:
        return [d for _, d in sorted(zip(docs.values(), docs, strict=True), reverse=True)]
    threshold = sorted(docs.values(), reverse=True)[k - 1]
    candidates = [(score, docid) for docid, score in docs.items() if score >= threshold]
    return [docid for _, docid in heapq.nlargest(k, candidates)]


def judged_share(top: Sequence[str], judged: dict[str, int]) -> float:
    """Share of the docs in `top` that have a qrels label, any label (Judged@k of the top k)."""
    return sum(1 for docid in top if docid in judged) / len(top) if top else 0.0


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


# ---------------------------------------------------------------- checks on the qrels


def load_qrels(path: str, level: int) -> Qrels:
    """Read qrels and refuse a query without any relevant doc; warn when -l leaves queries without one."""
    qrels = read_qrels(path)
    empty = [qid for qid, judged in qrels.items() if not any(rel > 0 for rel in judged.values())]
    if empty:
        shown = ", ".join(repr(q) for q in empty[:5]) + (" ..." if len(empty) > 5 else "")
        raise InputError(
            f"{len(empty)} qrels quer{'y has' if len(empty) == 1 else 'ies have'} no relevant document "
            f"(every label <= 0): {shown}; every measure would be 0 there: drop them from the qrels",
            path,
        )
    if level > 1:
        below = [qid for qid, judged in qrels.items() if not any(rel >= level for rel in judged.values())]
        if below:
            log.warning("%s: %d of %d queries have no doc at relevance level >= %d: "
                        "binary measures are 0 for them", path, len(below), len(qrels), level)
    return qrels


# ---------------------------------------------------------------- comparison and significance


@dataclass
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
        if measure.judged:
            continue
        diffs = [run.value(measure, q) - base.value(measure, q) for q in qids]  # type: ignore[operator]
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


# ---------------------------------------------------------------- the command


FORMATS = ("table", "json", "trec")


@dataclass
class EvalReport:
    """Everything `rearank eval` prints: results per run, in row order, and the settings."""

    qrels_path: str
    level: int
    qids: list[str]
    measures: list[Measure]
    results: list[RunResult]
    baseline: RunResult | None
    permutations: int
    seed: int


def run_eval(runs: Sequence[str], qrels_path: str, measure_names: Sequence[str] | None = None, *,
             level: int = 1, per_query: bool = False, baseline: str | None = None, fmt: str = "table",
             output: str = "-", permutations: int = 10_000, seed: int = 0, jobs: int | None = None) -> EvalReport:
    """`rearank eval`: evaluate runs, compare them with a baseline, write the report atomically."""
    from rearank_cli.formats.textio import atomic_output

    if fmt not in FORMATS:
        raise InputError(f"unknown --format {fmt!r}; valid: {', '.join(FORMATS)}")
    if permutations < 1:
        raise InputError("--permutations must be at least 1")
    measures = parse_measures(measure_names or DEFAULT_MEASURES)
    paths = _run_order(runs, baseline)
    qrels = load_qrels(qrels_path, level)
    evaluator = Evaluator(qrels, measures, level)
    results = [evaluator.evaluate(path, jobs=jobs) for path in paths]
    for result in results:
        warn_about(result, len(qrels))
    base = results[paths.index(baseline)] if baseline is not None else None
    if base is not None:
        for result in results:
            if result is not base:
                result.comparison = compare(result, base, evaluator.qids, permutations=permutations, seed=seed)
    report = EvalReport(qrels_path, level, evaluator.qids, measures, results, base, permutations, seed)
    text = render(report, fmt, per_query)
    with atomic_output(output) as out:
        out.write(text)
    return report


def _run_order(runs: Sequence[str], baseline: str | None) -> list[str]:
    """Row order: the baseline first when it is not among the runs, then the runs, without repeats."""
    paths = list(dict.fromkeys(runs))
    if baseline is not None and baseline not in paths:
        paths.insert(0, baseline)
    if not paths:
        raise InputError("no run given")
    return paths


def warn_about(result: RunResult, n_qrels: int) -> None:
    """stderr notes on what a run misses or what trec_eval silently does with it."""
    name = display_name(result.path)
    if result.missed:
        log.warning("%s: %d of %d qrels queries are not in the run (each counts 0 in the means)",
                    name, len(result.missed), n_qrels)
    if result.extra_queries:
        log.warning("%s: %d run queries are not in the qrels (ignored)", name, result.extra_queries)
    if result.tied_hits:
        log.warning(
            "%s: %d hits in %d queries tie on score with another hit of their query; trec_eval orders "
            "ties by docid (descending), not by rank, which can undo a reranker's order", name,
            result.tied_hits, result.tied_queries,
        )


def display_name(path: str) -> str:
    """How a run is named in tables (`-` is standard input)."""
    return "<stdin>" if path == "-" else path


def render(report: EvalReport, fmt: str, per_query: bool) -> str:
    """The report in one of FORMATS."""
    if fmt == "json":
        return render_json(report, per_query)
    if fmt == "trec":
        return render_trec(report, per_query)
    return render_table(report, per_query)


def _table(rows: list[list[str]], left: int = 1) -> list[str]:
    """Left-align the first `left` columns (names), right-align the others (numbers)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths,
            strict=True))).rstrip() for row in rows]


def _marks(comparison: Comparison | None, alpha: float = 0.05) -> str:
    if comparison is None:
        return "  "
    return ("*" if comparison.p_ttest < alpha else " ") + ("+" if comparison.p_randomization < alpha else " ")


def render_table(report: EvalReport, per_query: bool) -> str:
    """A row per run, a column per measure (4 decimals, as trec_eval prints), and comparisons."""
    compared = report.baseline is not None
    header = ["run", *(m.name + ("  " if compared else "") for m in report.measures), "missed"]
    rows = [header]
    for result in report.results:
        name = display_name(result.path) + (" (baseline)" if result is report.baseline else "")
        cells = [f"{result.means[m]:.4f}" + (_marks(result.comparison.get(m)) if compared else "")
                 for m in report.measures]
        rows.append([name, *cells, str(len(result.missed))])
    lines = _table(rows)
    if compared:
        lines += ["", *_comparison_lines(report)]
    if per_query:
        lines += ["", *_per_query_lines(report)]
    return "\n".join(lines) + "\n"


def _comparison_lines(report: EvalReport) -> list[str]:
    base = report.baseline
    assert base is not None
    lines = [
        f"* p < 0.05, paired two-sided t-test; + p < 0.05, paired randomization test ({report.permutations} "
        f"permutations, seed {report.seed}); both against {display_name(base.path)} over the "
        f"{len(report.qids)} qrels queries (a query missing from a run counts 0)",
        "",
    ]
    rows = [["run", "measure", "baseline", "run", "delta", "win/tie/loss", "p(t-test)", "p(random)"]]
    for result in report.results:
        for measure, c in result.comparison.items():
            rows.append([display_name(result.path), measure.name, f"{base.means[measure]:.4f}",
                         f"{result.means[measure]:.4f}", f"{c.delta:+.4f}", f"{c.win}/{c.tie}/{c.loss}",
                         _p(c.p_ttest), _p(c.p_randomization)])
    return lines + (_table(rows, left=2) if len(rows) > 1 else [])


def _p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _per_query_lines(report: EvalReport) -> list[str]:
    base = report.baseline
    header = ["qid", "measure"]
    for result in report.results:
        header.append(display_name(result.path))
        if base is not None and result is not base:
            header.append("delta")
    rows = [header]
    for qid in report.qids:
        for measure in report.measures:
            row = [qid, measure.name]
            for result in report.results:
                got = result.per_query[measure].get(qid)
                row.append("-" if got is None else f"{got:.4f}")
                if base is not None and result is not base:
                    delta = _delta(result, base, measure, qid)
                    row.append("-" if delta is None else f"{delta:+.4f}")
            rows.append(row)
    return ["per query (- = query not in the run; it counts 0 in means and deltas)", *_table(rows, left=2)]


def _delta(result: RunResult, base: RunResult, measure: Measure, qid: str) -> float | None:
    mine, theirs = result.value(measure, qid), base.value(measure, qid)
    return None if mine is None or theirs is None else mine - theirs


def trec_measures(measures: Sequence[Measure]) -> list[Measure]:
    """Measures in trec_eval's print order; refuses two measures that trec_eval names alike."""
    ordered = sorted(measures, key=Measure.trec_rank)
    keys = [m.key for m in ordered]
    clash = sorted({k for k in keys if keys.count(k) > 1})
    if clash:
        raise InputError(f"--format trec cannot show both MRR and MRR@k (trec_eval names both {clash[0]!r}); "
                         "use --format table or json")
    return ordered


def _trec_line(name: str, qid: str, value: float) -> str:
    return f"{name:<22}\t{qid}\t{value:.4f}"


def render_trec(report: EvalReport, per_query: bool) -> str:
    """trec_eval's layout (`-q` per-query lines first with --per-query); a runid line per run when several."""
    measures = trec_measures(report.measures)
    lines: list[str] = []
    for result in report.results:
        if len(report.results) > 1:
            lines.append(f"{'runid':<22}\tall\t{display_name(result.path)}")
        if per_query:
            for qid in report.qids:
                lines += [_trec_line(m.key, qid, result.per_query[m][qid])
                          for m in measures if qid in result.per_query[m]]
        lines += [_trec_line(m.key, "all", result.means[m]) for m in measures]
    return "\n".join(lines) + "\n"


def render_json(report: EvalReport, per_query: bool) -> str:
    """The same numbers, unrounded, with the settings and versions that produced them."""
    import orjson

    doc = {
        "qrels": report.qrels_path,
        "queries": len(report.qids),
        "relevance_level": report.level,
        "aggregation": "trec_eval -c: mean over all qrels queries, a missing query counts 0 "
                       "(Judged@k: mean over the queries the run answers)",
        "measures": [{"name": m.name, "trec_eval": m.key, "depth": m.depth} for m in report.measures],
        "baseline": report.baseline.path if report.baseline else None,
        "significance": {"ttest": "paired two-sided", "randomization": "paired sign flips",
                         "permutations": report.permutations, "seed": report.seed} if report.baseline else None,
        "versions": versions(("pytrec-eval-terrier",)),
        "runs": [_run_json(result, report, per_query) for result in report.results],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"


def _run_json(result: RunResult, report: EvalReport, per_query: bool) -> dict:
    doc: dict = {
        "run": result.path,
        "means": {m.name: result.means[m] for m in report.measures},
        "missed_queries": result.missed,
        "extra_queries": result.extra_queries,
        "hits": result.hits,
        "tied_hits": result.tied_hits,
        "tied_queries": result.tied_queries,
    }
    if result.comparison:
        doc["vs_baseline"] = {
            m.name: {"delta": c.delta, "win": c.win, "tie": c.tie, "loss": c.loss, "p_ttest": c.p_ttest,
                     "p_randomization": c.p_randomization}
            for m, c in result.comparison.items()
        }
    if per_query:
        doc["per_query"] = {qid: {m.name: result.per_query[m].get(qid) for m in report.measures}
                            for qid in report.qids}
    return doc


