"""`rearank eval`: trec_eval-exact evaluation, run comparison and significance.

Measures come from pytrec_eval (trec_eval's own C code). Means follow `trec_eval -c`: the sum of the
per-query values of the queries in both run and qrels, in qid order as trec_eval adds them, divided by
the number of qrels queries, so a query missing from the run counts as an empty ranking (0 for
almost every measure; counts are summed, gm_* are geometric means). Judged@k (the share of the top-k
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

# trec_eval 9.0.x's measure table in the order it prints measures: the whole of `-m all_trec`.
TREC_ORDER = (
    "runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "gm_map", "Rprec", "bpref", "recip_rank",
    "iprec_at_recall", "P", "relstring", "recall", "infAP", "gm_bpref", "Rprec_mult", "utility", "11pt_avg",
    "binG", "G", "ndcg", "ndcg_rel", "Rndcg", "ndcg_cut", "map_cut", "relative_P", "success", "set_P",
    "set_relative_P", "set_recall", "set_map", "set_F", "num_nonrel_judged_ret",
)
# trec_eval's nicknames for sets of measures (`official` is what it prints without -m).
NICKNAMES = {
    "all_trec": TREC_ORDER,
    "official": TREC_ORDER[:12],
    "set": ("runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "utility", "set_P", "set_relative_P",
            "set_recall", "set_map", "set_F"),
}
# families without parameters (trec_eval ignores any given; rearank refuses them).
PLAIN = (
    "runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "num_nonrel_judged_ret", "map", "gm_map", "Rprec",
    "bpref", "recip_rank", "infAP", "gm_bpref", "binG", "set_P", "set_relative_P", "set_recall", "set_map",
)
_TREC_CUTOFFS = (5, 10, 15, 20, 30, 100, 200, 500, 1000)
# cutoff families (one value per cutoff) and the cutoffs trec_eval uses when none is given.
CUTOFF = {
    "P": _TREC_CUTOFFS, "recall": _TREC_CUTOFFS, "ndcg_cut": _TREC_CUTOFFS, "map_cut": _TREC_CUTOFFS,
    "relative_P": _TREC_CUTOFFS, "success": (1, 5, 10),
}
# families with one value per float parameter (named with 2 decimals), and their defaults.
POINTS = {
    "iprec_at_recall": tuple(f"{i / 10:g}" for i in range(11)),
    "Rprec_mult": tuple(f"{i / 5:g}" for i in range(1, 11)),
}
_NUM = r"-?(?:\d+\.?\d*|\.\d+)"
_POS = r"(?:\d+\.?\d*|\.\d+)"
# families with one value whose parameters change it; trec_eval then names it `family_PARAMS`.
SINGLE = {  # family -> (parameter syntax, example)
    "ndcg": (rf"-?\d+={_NUM}(?:,-?\d+={_NUM})*", "ndcg.1=3,2=9 (label=gain pairs)"),
    "ndcg_rel": (rf"-?\d+={_NUM}(?:,-?\d+={_NUM})*", "ndcg_rel.1=3,2=9"),
    "Rndcg": (rf"-?\d+={_NUM}(?:,-?\d+={_NUM})*", "Rndcg.1=3,2=9"),
    "G": (rf"-?\d+={_NUM}(?:,-?\d+={_NUM})*", "G.1=3,2=9"),
    "utility": (rf"{_NUM},{_NUM},{_NUM},{_NUM}", "utility.2,-1,0,0 (4 coefficients)"),
    "11pt_avg": (rf"{_POS}(?:,{_POS})*", "11pt_avg..25,.5,.75 (recall points)"),
    "set_F": (_POS, "set_F.0.5 (beta)"),
    "relstring": (r"[1-9]\d*", "relstring.20 (docs shown)"),
}
TEXT = ("runid", "relstring")  # not numbers: the run's tag, and a query's top labels as a string
# measures trec_eval -q does not print per query
SUMMARY_ONLY = ("runid", "num_q", "gm_map", "gm_bpref")
GM_FLOOR = 1e-5  # trec_eval's MIN_GEO_MEAN: gm_map and gm_bpref average log(max(value, 1e-5))
JUDGED = "judged"
# short forms: name@k -> family with cutoff k; bare name -> plain measure.
SHORT_CUT = {"ndcg": "ndcg_cut", "map": "map_cut", "r": "recall", "recall": "recall", "p": "P",
             "mrr": "recip_rank", "judged": JUDGED, "success": "success"}
SHORT_PLAIN = {"ndcg": "ndcg", "map": "map", "mrr": "recip_rank"}
DISPLAY = {"ndcg_cut": "nDCG@{}", "map_cut": "MAP@{}", "recall": "R@{}", "P": "P@{}", "recip_rank": "MRR@{}",
           JUDGED: "Judged@{}", "success": "Success@{}", "ndcg": "nDCG", "map": "MAP"}
_FAMILIES = {name.lower(): name for name in (*TREC_ORDER, JUDGED)}
TIE_EPSILON = 1e-12


@dataclass(frozen=True)
class Measure:
    """One value line of trec_eval: a family with an optional cutoff or parameter, or MRR@k.

    `cutoff`: the cutoff of a cutoff family (P, recall, ...), Judged@k's k, or MRR@k's depth.
    `param`: one recall point or multiplier (iprec_at_recall, Rprec_mult), or the parameter string
    of a one-value family (`ndcg.1=3,2=9` -> "1=3,2=9").
    """

    family: str
    cutoff: int | None = None
    param: str | None = None

    @property
    def depth(self) -> int | None:
        """Docs kept per query before measuring (trec_eval -M): only for MRR@k."""
        return self.cutoff if self.family == "recip_rank" else None

    @property
    def result_key(self) -> str:
        """The name pytrec_eval gives this value (`ndcg_cut_10`, `iprec_at_recall_0.10`, `ndcg`)."""
        if self.cutoff is not None and not self.depth:
            return f"{self.family}_{self.cutoff}"
        if self.param is not None and self.family in POINTS:
            return f"{self.family}_{float(self.param):.2f}"
        return self.family

    @property
    def key(self) -> str:
        """trec_eval's output name (`ndcg_cut_10`, `ndcg_1=3,2=9`; MRR@10 is `recip_rank` with `-M 10`)."""
        if self.param is not None and self.family in SINGLE:
            return f"{self.family}_{self.param}"
        return self.result_key

    @property
    def name(self) -> str:
        """The display name: the common short form where there is one (`nDCG@10`)."""
        template = DISPLAY.get(self.family)
        if self.family == "recip_rank" and self.cutoff is None:
            return "MRR"
        if template is None or self.param is not None or ("{}" in template) != (self.cutoff is not None):
            return self.key
        return template.format(self.cutoff)

    @property
    def judged(self) -> bool:
        """Whether this is Judged@k, computed here rather than by trec_eval."""
        return self.family == JUDGED

    @property
    def text(self) -> bool:
        """Whether the value is text (runid, relstring) rather than a number."""
        return self.family in TEXT

    @property
    def count(self) -> bool:
        """Whether trec_eval prints it as an integer and sums it over queries (num_q, num_rel, ...)."""
        return self.family.startswith("num_")

    def trec_rank(self) -> tuple[int, float]:
        """Position in trec_eval's output order (Judged@k last, as pyserini prints it)."""
        base = TREC_ORDER.index(self.family) if self.family in TREC_ORDER else len(TREC_ORDER)
        if self.family in POINTS and self.param is not None:
            return base, float(self.param)
        return base, self.cutoff or 0


def valid_measures() -> str:
    """The accepted measure names, for error messages and --help."""
    return (
        "short forms nDCG@k, nDCG, MAP, MAP@k, R@k, P@k, MRR, MRR@k, Judged@k, Success@k; trec_eval 9.0.x "
        "names (" + ", ".join(TREC_ORDER) + "), nicknames " + ", ".join(NICKNAMES) + ", judged.k; "
        "parameters as trec_eval takes them: " + ", ".join(f"{f}.k1,k2" for f in CUTOFF)
        + ", iprec_at_recall..1,.25, Rprec_mult.0.5,2, " + ", ".join(example for _, example in SINGLE.values())
    )


def parse_measures(texts: Iterable[str]) -> list[Measure]:
    """Measures from trec_eval names or short forms, in the order given, without repeats.

    Unlike trec_eval, which keeps only the first `-m` of a family, every `-m` counts
    (`-m P.5 -m P.10` gives both).
    """
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
    """`P.5,10`, `ndcg.1=3,2=9`, `ndcg_cut_5,10` stay whole (trec_eval's lists); `nDCG@10,MAP` is two."""
    text = text.strip()
    name, dot, _ = text.partition(".")
    if (dot and name.lower() in _FAMILIES) or re.fullmatch(r"[A-Za-z0-9_]+_\d+(,\d+)+", text):
        return [text]
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_measure(text: str) -> list[Measure]:
    """One measure name (`nDCG@10`, `ndcg_cut.10`, `P.5,10`, `ndcg.1=3,2=9`, `P`, `all_trec`) -> its measures."""
    short = re.fullmatch(r"([A-Za-z]+)@(\d+)", text)
    if short and short.group(1).lower() in SHORT_CUT:
        return [Measure(SHORT_CUT[short.group(1).lower()], _cutoff(short.group(2), text))]
    if text.lower() in SHORT_PLAIN and text not in _FAMILIES.values():
        return [Measure(SHORT_PLAIN[text.lower()])]
    if text in NICKNAMES:
        return [m for family in NICKNAMES[text] for m in _whole_family(family, text)]
    family = _FAMILIES.get(text.lower())
    if family is not None:
        return _whole_family(family, text)
    name, dot, params = text.partition(".")
    family = _FAMILIES.get(name.lower()) if dot else None
    if family is None:
        trec = re.fullmatch(r"([A-Za-z0-9_]+?)_(\d+(?:,\d+)*)", text)  # ndcg_cut_10: pytrec_eval's spelling
        family = _FAMILIES.get(trec.group(1).lower()) if trec else None
        if trec is None or (family not in CUTOFF and family != JUDGED):
            raise InputError(f"unknown measure {text!r}; valid: {valid_measures()}")
        params = trec.group(2)
    return _with_params(family, params, text)


def _whole_family(family: str, text: str) -> list[Measure]:
    if family == JUDGED:
        raise InputError(f"measure {text!r} needs a cutoff, e.g. Judged@10 or judged.10")
    if family in CUTOFF:
        return [Measure(family, k) for k in CUTOFF[family]]
    if family in POINTS:
        return [Measure(family, param=p) for p in POINTS[family]]
    return [Measure(family)]


def _with_params(family: str, params: str, text: str) -> list[Measure]:
    """The measures of `family.params`, the parameters checked first (bad ones crash pytrec_eval)."""
    if family in PLAIN:
        raise InputError(f"measure {text!r}: {family} takes no parameter (valid: {family})")
    if family in SINGLE:
        syntax, example = SINGLE[family]
        if not re.fullmatch(syntax, params):
            raise InputError(f"measure {text!r}: bad parameter {params!r}; expected e.g. {example}")
        return [Measure(family, param=params)]
    tokens = params.split(",")
    if family in POINTS:
        bad = [t for t in tokens if not re.fullmatch(_POS, t)]
        if bad:
            raise InputError(f"measure {text!r}: parameter {bad[0]!r} is not a number >= 0")
        by_key = {f"{float(t):.2f}": f"{float(t):g}" for t in reversed(tokens)}
        return [Measure(family, param=p) for p in dict.fromkeys(by_key[f"{float(t):.2f}"] for t in tokens)]
    cutoffs = [_cutoff(t, text) for t in tokens]
    return [Measure(family, k) for k in dict.fromkeys(cutoffs)]


def _cutoff(digits: str, text: str) -> int:
    """A cutoff as trec_eval reads it (`23.4` is 23); at least 1."""
    if not re.fullmatch(r"\d+(\.\d*)?", digits):
        raise InputError(f"measure {text!r}: cutoff {digits!r} is not a positive integer")
    value = int(float(digits))
    if value < 1:
        raise InputError(f"measure {text!r}: the cutoff must be at least 1")
    return value


# ---------------------------------------------------------------- evaluating one run


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
    comparison: dict[Measure, Comparison] = field(default_factory=dict)

    def value(self, measure: Measure, qid: str) -> float | None:
        """Per-query value with -c semantics: 0 for a missing query (None for Judged@k, undefined there)."""
        got = self.per_query[measure].get(qid)
        if got is None and not measure.judged:
            return 0.0
        return got  # type: ignore[return-value]


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
        if m.judged or m.depth or m.text:
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


def relstring(top: Sequence[str], judged: dict[str, int]) -> str:
    """trec_eval's relstring of the top docs: each label as a digit, `>` above 9, `.` below 0, `-` unjudged."""
    chars = []
    for docid in top:
        rel = judged.get(docid)
        chars.append("-" if rel is None else "." if rel < 0 else ">" if rel > 9 else str(rel))
    return "".join(chars)


class Evaluator:
    """pytrec_eval evaluators for a qrels file and a measure list, reused across runs."""

    def __init__(self, qrels: Qrels, measures: Sequence[Measure], level: int = 1, *, max_docs: int | None = None,
                 exclude: dict[str, set[str]] | None = None) -> None:
        """`max_docs`: trec_eval -M (the top N docs of each query are kept before every measure);
        `exclude`: (qid, docid) pairs dropped from each run first (BRIGHT's excluded_ids)."""
        # The C evaluator itself: pytrec_eval's Python wrapper passes only numeric parameters
        # (no `ndcg.1=3,2=9`, `utility.2,-1,0,0`, `iprec_at_recall..25`). Parameters are checked
        # by parse_measure first: a bad one makes it abort the process.
        from pytrec_eval_ext import RelevanceEvaluator

        if max_docs is not None and max_docs < 1:
            raise InputError("-M must be at least 1")
        self.qrels = qrels
        self.qids = sorted(qrels)
        self.measures = list(measures)
        self.level = level
        self.max_docs = max_docs
        self.exclude = exclude or {}
        self.cutoffs = sorted({m.cutoff for m in measures if m.judged or m.depth})  # type: ignore[type-var]
        requests, self.layer_of = pytrec_requests(self.measures)
        self.layers = [RelevanceEvaluator(query_relevance=qrels, measures=set(request), relevance_level=level,
                                          judged_docs_only_flag=False) for request in requests]
        depths = sorted({m.depth for m in measures if m.depth})
        self.truncated = {k: RelevanceEvaluator(query_relevance=qrels, measures={"recip_rank"},
                                                relevance_level=level, judged_docs_only_flag=False)
                          for k in depths}
        self.num_rel = {qid: sum(1 for rel in judged.values() if rel >= level) for qid, judged in qrels.items()}
        # trec_eval 9.0.x -c: the summary num_rel counts every label > 0 in the qrels, whatever -l says
        self.num_rel_c = sum(1 for judged in qrels.values() for rel in judged.values() if rel > 0)

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
        info: dict = {}
        if path != "-" and os.path.isfile(path):  # a pipe cannot be read twice: read it whole
            try:
                return self._scan(path, iter_run_queries(path, info=info), batch_hits, info)
            except RunNotGrouped:
                log.debug("%s: queries are not grouped; reading the whole run", path)
        return self._scan(path, iter(read_run_scores(path, info=info).items()), batch_hits, info)

    def _scan(self, path: str, queries: Iterator[tuple[str, dict[str, float]]], batch_hits: int,
              info: dict) -> RunResult:
        result = RunResult(path, self.measures, {m: {} for m in self.measures}, {}, [])
        self._collect(queries, result, batch_hits, set())
        result.tag = info.get("tag")
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

    def _collect(self, queries: Iterable[tuple[str, dict[str, float]]], result: RunResult, batch_hits: int,
                 seen: set[str]) -> None:
        """Measure queries in batches into `result`; `seen` gets every qid."""
        batch: dict[str, dict[str, float]] = {}
        tops: dict[str, dict[int, list[str]]] = {}
        size = 0
        for qid, docs in queries:
            seen.add(qid)
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
        info: dict = {}
        queries = iter_run_queries(path, span, info=info)
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
        result.tag = info.get("tag")
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
        result.excluded += other.excluded
        result.answered |= other.answered
        result.tag = other.tag if other.tag is not None else result.tag
        self._collect(held, result, batch_hits, set())
        return result

    def _measure(self, batch: dict[str, dict[str, float]], tops: dict[str, dict[int, list[str]]],
                 result: RunResult) -> None:
        """Per-query values of a batch of queries (all of them in the qrels); `tops`: their top-k docids."""
        if not batch:
            return
        layers = [layer.evaluate(batch) for layer in self.layers]
        depth_values: dict[int, dict[str, float]] = {}
        for depth, evaluator in self.truncated.items():
            top = {qid: {d: docs[d] for d in tops[qid][depth]} for qid, docs in batch.items()}
            depth_values[depth] = {qid: got["recip_rank"] for qid, got in evaluator.evaluate(top).items()}
        result.answered.update(batch)
        for measure in self.measures:
            store = result.per_query[measure]
            if measure.judged:
                for qid in batch:
                    store[qid] = judged_share(tops[qid][measure.cutoff or 0], self.qrels[qid])
            elif measure.family == "relstring":
                for qid, docs in batch.items():
                    store[qid] = relstring(top_k(docs, int(measure.param or 10)), self.qrels[qid])
            elif measure.depth:
                store.update(depth_values[measure.depth])
            elif not measure.text:
                values, key = layers[self.layer_of[measure]], measure.result_key
                for qid in batch:
                    store[qid] = values[qid][key]

    def _finish(self, result: RunResult) -> RunResult:
        if not result.answered:
            raise InputError(
                f"none of the run's queries is in the qrels ({len(self.qrels)} queries): "
                "wrong qrels or wrong run file?", result.path,
            )
        result.missed = [qid for qid in self.qids if qid not in result.answered]
        for measure in self.measures:
            if not measure.text:
                result.means[measure] = self.summary(measure, result.per_query[measure])  # type: ignore[arg-type]
        return result

    def summary(self, measure: Measure, values: dict[str, float]) -> float:
        """trec_eval -c's summary of per-query values: the mean over all qrels queries, a sum for the
        counts (num_ret, ...), a geometric mean for gm_map and gm_bpref; a query missing from the run
        takes its value on an empty ranking. num_rel: every label > 0 in the qrels (trec_eval 9.0.x
        ignores -l there). Judged@k: the mean over the queries the run answers."""
        if measure.judged:
            return mean_c(values, self.qids, judged=True)
        if measure.family == "num_rel":
            return float(self.num_rel_c)
        total = 0.0
        for qid in self.qids:  # added in qid order, as trec_eval adds them
            value = values.get(qid)
            total += value if value is not None else self.empty_value(measure, qid)
        if measure.count:
            return total
        if measure.family.startswith("gm_"):
            return math.exp(total / len(self.qids))
        return total / len(self.qids)

    def empty_value(self, measure: Measure, qid: str) -> float:
        """A measure's value on an empty ranking (what trec_eval -c uses for a query missing from the run).

        (pytrec_eval cannot evaluate an empty ranking: it crashes or returns garbage there.)
        """
        if measure.family == "num_q":
            return 1.0
        if measure.family == "num_rel":
            return float(self.num_rel[qid])
        if measure.family.startswith("gm_"):
            return math.log(GM_FLOOR)
        return 0.0


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
        if measure.judged or measure.text:
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
    max_docs: int | None = None


def run_eval(runs: Sequence[str], qrels_path: str, measure_names: Sequence[str] | None = None, *,
             level: int = 1, per_query: bool = False, baseline: str | None = None, fmt: str = "table",
             output: str = "-", permutations: int = 10_000, seed: int = 0, jobs: int | None = None,
             max_docs: int | None = None, exclude: str | None = None) -> EvalReport:
    """`rearank eval`: evaluate runs, compare them with a baseline, write the report atomically.

    `max_docs` is trec_eval's -M; `exclude` a file of (qid, docid) pairs dropped from every run.
    """
    from rearank_cli.formats.exclude import read_exclusions
    from rearank_cli.formats.textio import atomic_output

    if fmt not in FORMATS:
        raise InputError(f"unknown --format {fmt!r}; valid: {', '.join(FORMATS)}")
    if permutations < 1:
        raise InputError("--permutations must be at least 1")
    measures = parse_measures(measure_names or DEFAULT_MEASURES)
    if fmt == "trec":
        trec_measures(measures)  # refuse what trec_eval's layout cannot show before any work
    paths = _run_order(runs, baseline)
    qrels = load_qrels(qrels_path, level)
    pairs = read_exclusions(exclude) if exclude is not None else None
    evaluator = Evaluator(qrels, measures, level, max_docs=max_docs, exclude=pairs)
    results = [evaluator.evaluate(path, jobs=jobs) for path in paths]
    for result in results:
        warn_about(result, len(qrels))
    base = results[paths.index(baseline)] if baseline is not None else None
    if base is not None:
        for result in results:
            if result is not base:
                result.comparison = compare(result, base, evaluator.qids, permutations=permutations, seed=seed)
    report = EvalReport(qrels_path, level, evaluator.qids, measures, results, base, permutations, seed, max_docs)
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
    if result.excluded:
        log.info("%s: %d hits dropped by --exclude", name, result.excluded)
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
    numeric = [m for m in report.measures if not m.text]
    header = ["run", *(m.name + ("  " if compared else "") for m in numeric), "missed"]
    rows = [header]
    for result in report.results:
        name = display_name(result.path) + (" (baseline)" if result is report.baseline else "")
        cells = [format_value(m, result.means[m]) + (_marks(result.comparison.get(m)) if compared else "")
                 for m in numeric]
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
            if measure.family == "runid":
                continue
            row = [qid, measure.name]
            for result in report.results:
                got = result.per_query[measure].get(qid)
                row.append("-" if got is None else format_value(measure, got))
                if base is not None and result is not base:
                    delta = None if measure.text else _delta(result, base, measure, qid)
                    row.append("" if measure.text else "-" if delta is None else f"{delta:+.4f}")
            rows.append(row)
    return ["per query (- = query not in the run; it counts 0 in means and deltas)", *_table(rows, left=2)]


def format_value(measure: Measure, value: float | str) -> str:
    """A value as trec_eval prints it: counts as integers, text quoted, the rest with 4 decimals."""
    if isinstance(value, str):
        return f"'{value}'"
    if measure.count:
        return str(round(value))
    return f"{value:.4f}"


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


def _trec_line(name: str, qid: str, value: str) -> str:
    return f"{name:<22}\t{qid}\t{value}"


def render_trec(report: EvalReport, per_query: bool) -> str:
    """trec_eval's layout (`-q` per-query lines first with --per-query).

    With several runs, each block starts with a `runid` line naming the file (unless `runid`, the
    run's own tag as trec_eval prints it, is one of the measures).
    """
    measures = trec_measures(report.measures)
    shown = [m for m in measures if m.family not in SUMMARY_ONLY]
    runid = any(m.family == "runid" for m in measures)
    lines: list[str] = []
    for result in report.results:
        if len(report.results) > 1 and not runid:
            lines.append(_trec_line("runid", "all", display_name(result.path)))
        if per_query:
            for qid in report.qids:
                lines += [_trec_line(m.key, qid, format_value(m, result.per_query[m][qid]))
                          for m in shown if qid in result.per_query[m]]
        for m in measures:
            if m.family == "runid":
                lines.append(_trec_line("runid", "all", result.tag or ""))
            elif not m.text:
                lines.append(_trec_line(m.key, "all", format_value(m, result.means[m])))
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
        "max_docs": report.max_docs,
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
        "runid": result.tag,
        "means": {m.name: result.means[m] for m in report.measures if not m.text},
        "missed_queries": result.missed,
        "extra_queries": result.extra_queries,
        "hits": result.hits,
        "tied_hits": result.tied_hits,
        "tied_queries": result.tied_queries,
        "excluded_hits": result.excluded,
    }
    if result.comparison:
        doc["vs_baseline"] = {
            m.name: {"delta": c.delta, "win": c.win, "tie": c.tie, "loss": c.loss, "p_ttest": c.p_ttest,
                     "p_randomization": c.p_randomization}
            for m, c in result.comparison.items()
        }
    if per_query:
        doc["per_query"] = {qid: {m.name: result.per_query[m].get(qid) for m in report.measures
                                  if m.family != "runid"} for qid in report.qids}
    return doc


