"""Rerank inputs: the one check of where query and passage texts come from (`--candidates`, or
`--topics` + `--corpus`), the text loader shared with `augment`, shards, and the join of a run with its
texts into `QueryInput`s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from rearank_cli.errors import InputError, RunNotGrouped, some
from rearank_cli.formats.candidates import iter_candidates
from rearank_cli.formats.spool import Spool
from rearank_cli.formats.trec import Hit, Run, first_stage_order, iter_run_queries, read_first_stage
from rearank_cli.prompts.base import clean_passage
from rearank_cli.prompts.registry import get_family
from rearank_cli.rerank.plan import QueryInput

log = logging.getLogger("rearank")

#: docids asked of a Lucene index at a time when spooling texts
TEXT_BATCH = 10_000


def check_text_source(topics: str | None, corpus: str | None, candidates: str | None) -> None:
    """Query and passage texts come from `--candidates` or from `--topics` + `--corpus`: InputError
    (exit status 2) naming what is missing, or for both."""
    if candidates is not None and (topics is not None or corpus is not None):
        raise InputError("--candidates carries query and passage texts: give either it or --topics and --corpus, "
                         "not both")
    if candidates is None and topics is None and corpus is None:
        raise InputError("query and passage texts are needed: give --topics and --corpus, or --candidates")
    if candidates is None and corpus is None:
        raise InputError("--topics given without --corpus: the passage texts come from --corpus (a JSONL corpus "
                         "or a Lucene index), or give --candidates instead of both")
    if candidates is None and topics is None:
        raise InputError("--corpus given without --topics: the query texts come from --topics, or give "
                         "--candidates instead of both")


@dataclass
class TextSource:
    """Where query and passage texts come from: `topics` by qid, `texts_for(docids)` for the passages
    (read only for the docs asked for), and `run`, the candidates' own lists (None for topics + corpus)."""

    topics: dict[str, str]
    texts_for: Callable[[set[str]], dict[str, str]]
    topics_path: str
    corpus_path: str
    run: Run | None = None


def open_texts(topics: str | None, corpus: str | None, candidates: str | None) -> TextSource:
    """Read the topics (or the candidates file) after `check_text_source`; passages are read on demand."""
    from rearank_cli.formats import read_candidates, read_topics

    check_text_source(topics, corpus, candidates)
    if candidates is not None:
        data = read_candidates(candidates)
        return TextSource(data.topics, lambda wanted: {d: data.texts[d] for d in wanted if d in data.texts},
                          candidates, candidates, data.run)
    from rearank_cli.texts import fetch_texts

    assert topics is not None and corpus is not None
    return TextSource(read_topics(topics), lambda wanted: fetch_texts(corpus, wanted), topics, corpus)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`I/N` (0 <= I < N, a SLURM array index) -> `(I, N)`; None stays None."""
    if text is None:
        return None
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise InputError(f"--shard expects I/N (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard {text}: need 0 <= I < N (shards are numbered from 0)")
    return index, count


def shard_qids(qids: Sequence[str], shard: tuple[int, int] | None) -> list[str]:
    """The queries of shard `(I, N)`: every N-th query of the run, starting at the I-th."""
    if shard is None:
        return list(qids)
    index, count = shard
    return [qid for position, qid in enumerate(qids) if position % count == index]


@dataclass
class LoadedInputs:
    """Queries ready to rerank plus what was skipped or suspicious on the way."""

    queries: list[QueryInput]
    skipped_qids: list[str] = field(default_factory=list)
    missing_docs: int = 0
    empty_passages: list[tuple[str, str]] = field(default_factory=list)


def load_queries(
    run: Run,
    topics: dict[str, str],
    texts_for: Callable[[set[str]], dict[str, str]],
    *,
    depth: int,
    prompt: str,
    shard: tuple[int, int] | None = None,
    skip_missing: bool = False,
    topics_path: str | None = None,
    corpus_path: str | None = None,
) -> LoadedInputs:
    """Join a run with query and passage texts (only the top `depth` docs of each query need text).

    A qid without a topic or a head docid without text is an InputError naming them, unless
    `skip_missing`: then such queries are skipped and such docs are reranked as empty passages.
    Passages that are empty after cleaning are kept (and reported).
    """
    qids = shard_qids(list(run), shard)
    missing_qids = [qid for qid in qids if qid not in topics]
    if missing_qids and not skip_missing:
        raise InputError(f"{len(missing_qids)} qid(s) of the run have no topic: {some(missing_qids)} "
                         "(--skip-missing skips them)", topics_path)
    loaded = LoadedInputs([], skipped_qids=missing_qids)
    qids = [qid for qid in qids if qid in topics]
    wanted = {docid for qid in qids for docid, _ in run[qid][:depth]}
    texts = texts_for(wanted)
    missing = [(qid, docid) for qid in qids for docid, _ in run[qid][:depth] if docid not in texts]
    if missing and not skip_missing:
        raise InputError(f"{len(missing)} docid(s) of the run have no text: "
                         f"{some([f'{q}/{d}' for q, d in missing])} (--skip-missing reranks them as empty "
                         "passages)", corpus_path)
    loaded.missing_docs = len(missing)
    limit = get_family(prompt).passage_chars
    for qid in qids:
        head = run[qid][:depth]
        query_texts = {docid: texts.get(docid, "") for docid, _ in head}
        loaded.empty_passages += [(qid, d) for d, t in query_texts.items() if not clean_passage(t, limit)]
        loaded.queries.append(QueryInput(qid, topics[qid], list(run[qid]), query_texts))
    if missing_qids:
        log.warning("skipped %d query(ies) with no topic: %s", len(missing_qids), some(missing_qids))
    if missing:
        log.warning("%d docid(s) have no text and are reranked as empty passages: %s", len(missing),
                    some([f"{q}/{d}" for q, d in missing]))
    if loaded.empty_passages:
        log.warning("%d passage(s) are empty after cleaning (kept in place as empty passages): %s",
                    len(loaded.empty_passages), some([f"{q}/{d}" for q, d in loaded.empty_passages]))
    return loaded




# ---------------------------------------------------------------- streamed inputs (memory flat in queries)


@dataclass
class StreamedInputs:
    """The queries of a rerank job kept on disk until they start (`rerank` of any size).

    One pass over the inputs checks them all (a qid without a topic, a head docid without text: the
    same errors as `load_queries`, before any work) and spools each query's hits (by qid) and each
    passage text the queries need (by docid) to unlinked temporary files; `queries()` then reads one
    query at a time, in run order. Memory holds the qids, the topics and the spools' key indexes.
    """

    qids: list[str]
    topics: dict[str, str]
    hits: Spool
    texts: Spool
    depth: int
    skipped_qids: list[str] = field(default_factory=list)
    missing_docs: int = 0
    #: docids whose text is empty after cleaning (each query listing one in its head counts it)
    empty_docids: set[str] = field(default_factory=set)
    #: (query, doc) pairs whose passage is empty after cleaning
    empty_passages: int = 0

    def query_hits(self, qid: str) -> list[Hit]:
        """A query's first-stage hits, in order."""
        return [(docid, score) for docid, score in orjson.loads(self.hits.get(qid))]

    def query(self, qid: str, with_texts: bool = True) -> QueryInput:
        """One query ready to rerank (`with_texts=False`: hits only, for planning)."""
        hits = self.query_hits(qid)
        texts = {}
        if with_texts:
            texts = {docid: self.texts.get(docid).decode() if docid in self.texts else "" for docid, _ in
                     hits[: self.depth]}
        return QueryInput(qid, self.topics[qid] if with_texts else "", hits, texts)

    def queries(self, with_texts: bool = True) -> Iterator[QueryInput]:
        """The queries in run order, read one at a time."""
        return (self.query(qid, with_texts) for qid in self.qids)

    def count_empty_passages(self) -> int:
        """(query, doc) pairs whose passage is empty after cleaning."""
        if not self.empty_docids:
            return 0
        return sum(docid in self.empty_docids for qid in self.qids for docid, _ in self.query_hits(qid)[: self.depth])

    def close(self) -> None:
        """Drop the spools."""
        self.hits.close()
        self.texts.close()


class SpooledRun(Mapping[str, list[Hit]]):
    """The run of `StreamedInputs` as a read-only mapping `{qid: hits}` (each read from the spool)."""

    def __init__(self, inputs: StreamedInputs) -> None:
        self.inputs = inputs

    def __getitem__(self, qid: str) -> list[Hit]:
        return self.inputs.query_hits(qid)

    def __iter__(self) -> Iterator[str]:
        return iter(self.inputs.qids)

    def __len__(self) -> int:
        return len(self.inputs.qids)


class SpooledTexts(Mapping[str, str]):
    """The passage texts of `StreamedInputs` as a read-only mapping `{docid: text}`."""

    def __init__(self, inputs: StreamedInputs) -> None:
        self.spool = inputs.texts

    def __getitem__(self, docid: str) -> str:
        return self.spool.get(docid).decode()

    def __contains__(self, docid: object) -> bool:
        return docid in self.spool

    def __iter__(self) -> Iterator[str]:
        raise TypeError("spooled texts are looked up by docid, not listed")

    def __len__(self) -> int:
        return len(self.spool)


def stream_inputs(run: str | None, topics: str | None, corpus: str | None, candidates: str | None, *, depth: int,
                  prompt: str, shard: tuple[int, int] | None = None, skip_missing: bool = False,
                  spool_folder: str | None = None) -> StreamedInputs:
    """Check and spool the inputs of a rerank job (see `StreamedInputs`): the run (or the candidates'
    own lists) defines the queries and their order; texts come from the candidates or topics + corpus
    (a JSONL file or a Lucene index). The errors and warnings are `load_queries`'."""
    check_text_source(topics, corpus, candidates)
    inputs = spool_inputs(run, topics, corpus, candidates, depth=depth, shard=shard, spool_folder=spool_folder,
                          passage_chars=get_family(prompt).passage_chars)
    if inputs.skipped_qids and not skip_missing:
        inputs.close()
        raise InputError(f"{len(inputs.skipped_qids)} qid(s) of the run have no topic: {some(inputs.skipped_qids)} "
                         "(--skip-missing skips them)", candidates if candidates is not None else topics)
    try:
        _check_texts(inputs, candidates or corpus, skip_missing)
    except InputError:
        inputs.close()
        raise
    _warn(inputs)
    return inputs


def spool_inputs(run: str | None, topics: str | None, corpus: str | None, candidates: str | None, *, depth: int,
                 shard: tuple[int, int] | None = None, spool_folder: str | None = None,
                 passage_chars: int | None = None, every_query: bool = False,
                 needs_text: Callable[[str], bool] | None = None) -> StreamedInputs:
    """Spool a run's queries and the texts of their top `depth` docs, without judging them (see
    `stream_inputs`). A query without a topic goes to `skipped_qids` and, unless `every_query`, out of
    `qids`; with `needs_text`, only the queries it accepts get texts. `passage_chars`: the prompt's
    passage length, to note passages that are empty after cleaning."""
    from rearank_cli.formats import read_topics

    inputs = StreamedInputs([], {}, Spool(spool_folder), Spool(spool_folder), depth)
    wanted: set[str] = set()

    def keep_text(docid: str, text: str) -> None:
        if inputs.texts.add(docid, text.encode()) and passage_chars and not clean_passage(text, passage_chars):
            inputs.empty_docids.add(docid)

    if candidates is not None and run is None:
        first_stage = _candidate_lists(candidates, inputs.topics, keep_text)
    else:
        if candidates is not None:
            for entry in iter_candidates(candidates):  # texts by docid from any entry, the first one wins
                inputs.topics[entry.qid] = entry.query
                for docid, text in entry.texts.items():
                    keep_text(docid, text)
        else:
            assert topics is not None
            inputs.topics = read_topics(topics)
        assert run is not None
        first_stage = _first_stage(run)
    spool = _QuerySpooler(inputs, shard, wanted if corpus is not None else None, every_query, needs_text)
    try:
        spool(first_stage)
    except RunNotGrouped:
        assert run is not None
        log.info("%s: the lines of a query are not together; reading the whole run", run)
        inputs.hits.close()
        inputs.hits, inputs.qids, inputs.skipped_qids = Spool(spool_folder), [], []
        wanted.clear()
        spool(iter(read_first_stage(run).items()))
    if corpus is not None:
        _spool_corpus(corpus, wanted, keep_text)
    return inputs


def _candidate_lists(path: str, topics: dict[str, str],
                     keep_text: Callable[[str, str], None]) -> Iterator[tuple[str, list[Hit]]]:
    """The candidates' own lists, their texts spooled (the first text of a docid wins) as they go by."""
    for entry in iter_candidates(path):
        topics[entry.qid] = entry.query
        for docid, text in entry.texts.items():
            keep_text(docid, text)
        yield entry.qid, entry.hits


@dataclass
class _QuerySpooler:
    """Spools the hits of the queries of a first stage in this shard; collects the head docids that need
    text in `wanted`."""

    inputs: StreamedInputs
    shard: tuple[int, int] | None
    wanted: set[str] | None
    every_query: bool = False
    needs_text: Callable[[str], bool] | None = None

    def __call__(self, first_stage: Iterable[tuple[str, list[Hit]]]) -> None:
        inputs, shard = self.inputs, self.shard
        for position, (qid, hits) in enumerate(first_stage):
            if shard is not None and position % shard[1] != shard[0]:
                continue
            has_topic = qid in inputs.topics
            if not has_topic:
                inputs.skipped_qids.append(qid)
                if not self.every_query:
                    continue
            inputs.qids.append(qid)
            inputs.hits.add(qid, orjson.dumps(hits))
            if self.wanted is not None and has_topic and (self.needs_text is None or self.needs_text(qid)):
                self.wanted.update(docid for docid, _ in hits[: inputs.depth])


def _first_stage(path: str) -> Iterator[tuple[str, list[Hit]]]:
    """A TREC run query by query in first-stage order, streamed (RunNotGrouped when a query's lines are
    not together: then read it whole); stdin and pipes are read whole."""
    if path != "-" and os.path.isfile(path):
        for qid, docs in iter_run_queries(path):
            yield qid, first_stage_order(list(docs.items()))
        return
    yield from read_first_stage(path).items()


def _spool_corpus(corpus: str, wanted: set[str], keep_text: Callable[[str, str], None]) -> None:
    """Spool the texts of the wanted docids from a JSONL corpus (one pass) or a Lucene index (in batches)."""
    if os.path.isdir(corpus):
        from rearank_cli.lucene.docstore import read_index_texts

        docids = sorted(wanted)
        for start in range(0, len(docids), TEXT_BATCH):
            for docid, text in read_index_texts(corpus, docids[start : start + TEXT_BATCH]).items():
                keep_text(docid, text)
        return
    from rearank_cli.formats.corpus import iter_corpus

    for docid, text in iter_corpus(corpus):
        if docid in wanted:
            keep_text(docid, text)


def _check_texts(inputs: StreamedInputs, source: str | None, skip_missing: bool) -> None:
    """A head docid without text: InputError naming some, unless `skip_missing` (then a warning)."""
    missing: list[str] = []
    for qid in inputs.qids:
        for docid, _ in inputs.query_hits(qid)[: inputs.depth]:
            if docid not in inputs.texts:
                inputs.missing_docs += 1
                if len(missing) < 5:
                    missing.append(f"{qid}/{docid}")
    if not inputs.missing_docs:
        return
    shown = _some(missing, inputs.missing_docs)
    if not skip_missing:
        raise InputError(f"{inputs.missing_docs} docid(s) of the run have no text: {shown} (--skip-missing reranks "
                         "them as empty passages)", source)
    log.warning("%d docid(s) have no text and are reranked as empty passages: %s", inputs.missing_docs, shown)


def _some(shown: list[str], count: int) -> str:
    """`some()` for a list of which only the first few were kept."""
    return ", ".join(shown) + (f", ... ({count - len(shown)} more)" if count > len(shown) else "")


def _warn(inputs: StreamedInputs) -> None:
    """`load_queries`' warnings: skipped queries, empty passages."""
    if inputs.skipped_qids:
        log.warning("skipped %d query(ies) with no topic: %s", len(inputs.skipped_qids), some(inputs.skipped_qids))
    inputs.empty_passages = inputs.count_empty_passages()
    if inputs.empty_passages:
        log.warning("%d passage(s) are empty after cleaning (kept in place as empty passages): docids %s",
                    inputs.empty_passages, some(sorted(inputs.empty_docids)))
