"""Rerank inputs: the one check of where query and passage texts come from (`--candidates`, or
`--topics` + `--corpus`), the text loader shared with `augment`, shards, and the join of a run with its
texts into `QueryInput`s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rearank_cli.errors import InputError, some
from rearank_cli.formats.trec import Run
from rearank_cli.prompts import clean_passage, get_prompt
from rearank_cli.rerank.plan import QueryInput

log = logging.getLogger("rearank")


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
    limit = get_prompt(prompt).passage_chars
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


