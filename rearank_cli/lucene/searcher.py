"""Lucene BM25 exactly as Anserini's `SearchCollection` does it, and Anserini's score adjustment.

Lucene `BM25Similarity`, `BagOfWordsQueryGenerator`, score ties broken by docid through the `id` doc
values, but without loading a stored document per hit: docids come from the sort values, and each
query's hits cross the JNI boundary as one string (no Java object per hit reaches Python). Scores are
then adjusted as Anserini's `ScoreTiesAdjusterReranker` does (4 decimals, ties lowered by 1e-6 each)
and written with 6 decimals, as pyserini's `search` CLI writes them, so the run is Anserini's, byte for
byte. Queries run on N Python threads (jnius releases the GIL inside Java calls).
"""

from __future__ import annotations

import math
import os
import queue
import re
import struct
import threading
from array import array
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import orjson

from rearank_cli.errors import InputError, RearankError
from rearank_cli.formats.trec import Hit
from rearank_cli.lucene import java
from rearank_cli.lucene.indexer import MANIFEST

_F32_1E_4, _F32_1E_6 = (struct.unpack("f", struct.pack("f", x))[0] for x in (1e-4, 1e-6))  # 1e-4f, 1e-6f
# Lucene's FieldDoc.toString(): "doc=12 score=3.4 shardIndex=-1 fields=[3.4, [31 32]]" (the id as hex bytes).
_HIT = re.compile(r"doc=\d+ score=(\S+) shardIndex=-?\d+ fields=\[[^,\]]*, \[([0-9a-f ]*)\]\]")


class Bm25Searcher:
    """Lucene BM25 over an Anserini index, thread-safe, hits as `(docid, score)` in Anserini's order.

    One query is one JNI call: a method handle composed in Java (query generator -> IndexSearcher.search
    sorted by score then docid -> Arrays.toString of the hits), so no Java object per hit reaches Python.
    """

    def __init__(self, index_dir: str, k1: float = 0.9, b: float = 0.4, fields: dict[str, float] | None = None):
        java.ready()  # before any jnius import: importing jnius starts a JVM without our classpath
        import jnius

        utils = java.autoclass("io.anserini.index.IndexReaderUtils")
        try:
            self._reader = utils.getReader(index_dir)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"cannot open Lucene index: {java.message(exc)}", index_dir) from None
        self.fields = fields if fields is not None else _default_fields(self._reader, index_dir)
        self._searcher = java.autoclass("org.apache.lucene.search.IndexSearcher")(
            jnius.cast("org.apache.lucene.index.IndexReader", self._reader))
        self._searcher.setSimilarity(java.autoclass("org.apache.lucene.search.similarities.BM25Similarity")(k1, b))
        self._query = self._query_handle()
        self._functions: dict[int, Any] = {}
        self._lock = threading.Lock()
        self.num_docs = int(self._reader.numDocs())

    def _class(self, name: str) -> Any:
        return java.autoclass("java.lang.Class").forName(name)

    def _query_handle(self) -> Any:
        """MethodHandle String -> Query: Anserini's BagOfWordsQueryGenerator on `contents` (or several fields)."""
        autoclass = java.autoclass
        handles, types = autoclass("java.lang.invoke.MethodHandles"), autoclass("java.lang.invoke.MethodType")
        generator = autoclass("io.anserini.search.query.BagOfWordsQueryGenerator")()
        string, analyzer = self._class("java.lang.String"), self._class("org.apache.lucene.analysis.Analyzer")
        if list(self.fields) == ["contents"]:
            target, first = string, "contents"
        else:
            target, first = self._class("java.util.Map"), autoclass("java.util.HashMap")()
            for name, boost in self.fields.items():
                first.put(name, autoclass("java.lang.Float")(boost))
        query_type = types.methodType(self._class("org.apache.lucene.search.Query"), [target, analyzer, string])
        handle = handles.publicLookup().bind(generator, "buildQuery", query_type)
        handle = handles.insertArguments(handle, 0, first)
        return handles.insertArguments(handle, 0, autoclass("io.anserini.index.IndexCollection").DEFAULT_ANALYZER)

    def _function(self, k: int) -> Any:
        """A java.util.function.Function: query text -> `Arrays.toString(top-k FieldDoc[])`."""
        with self._lock:
            if k not in self._functions:
                self._functions[k] = self._compose(k)
            return self._functions[k]

    def _compose(self, k: int) -> Any:
        import jnius

        autoclass, cls = java.autoclass, self._class
        handles, types = autoclass("java.lang.invoke.MethodHandles"), autoclass("java.lang.invoke.MethodType")
        lookup = handles.publicLookup()
        top_docs, top_field_docs = cls("org.apache.lucene.search.TopDocs"), cls("org.apache.lucene.search.TopFieldDocs")
        objects = cls("[Ljava.lang.Object;")
        search_type = types.methodType(top_field_docs, [cls("org.apache.lucene.search.Query"),
                                                        autoclass("java.lang.Integer").TYPE,
                                                        cls("org.apache.lucene.search.Sort"),
                                                        autoclass("java.lang.Boolean").TYPE])
        search = lookup.bind(self._searcher, "search", search_type)
        # Boxed constants built by constructors: jnius unboxes values returned by methods.
        search = handles.insertArguments(search, 1, autoclass("java.lang.Integer")(k))
        search = handles.insertArguments(search, 1, autoclass("io.anserini.search.SearchCollection")
                                         .BREAK_SCORE_TIES_BY_DOCID)
        search = handles.insertArguments(search, 1, autoclass("java.lang.Boolean")(True))
        hits = lookup.findGetter(top_docs, "scoreDocs", cls("[Lorg.apache.lucene.search.ScoreDoc;"))
        to_string = lookup.findStatic(cls("java.util.Arrays"), "toString",
                                      types.methodType(cls("java.lang.String"), objects))
        handle = handles.filterReturnValue(self._query, search)
        handle = handles.filterReturnValue(handle, hits.asType(types.methodType(objects, top_field_docs)))
        handle = handles.filterReturnValue(handle, to_string)
        any_type = cls("java.lang.Object")
        function = autoclass("java.lang.invoke.MethodHandleProxies").asInterfaceInstance(
            cls("java.util.function.Function"), handle.asType(types.methodType(any_type, any_type)))
        return jnius.cast("java.util.function.Function", function)

    def search_lucene(self, text: str, k: int) -> list[Hit]:
        """Top-k hits with Lucene's own float32 scores (score descending, ties by docid ascending)."""
        function = self._function(k)
        try:
            found = function.apply(text)
        except Exception as exc:  # noqa: BLE001 - JavaException
            raise RearankError(f"Lucene search failed: {java.message(exc)} (is this an Anserini index "
                               "with an `id` field?)") from None
        return parse_hits(found)

    def search(self, text: str, k: int) -> list[Hit]:
        """Top-k hits as Anserini's `SimpleSearcher.search` returns them: Lucene's order, scores
        rounded to 4 decimals with ties lowered by 1e-6 each (`anserini_scores`)."""
        hits = self.search_lucene(text, k)
        return list(zip([docid for docid, _ in hits], anserini_scores([score for _, score in hits]), strict=True))

    def close(self) -> None:
        """Close the index reader."""
        self._reader.close()


def _f32(value: float) -> float:
    """`value` rounded to the nearest float32 (one IEEE operation on float32 inputs, as Java does it)."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


def anserini_scores(scores: Sequence[float]) -> list[float]:
    """Scores as Anserini's `ScoreTiesAdjusterReranker` leaves them (what `SimpleSearcher.search` returns).

    In hit order (score descending, ties by docid ascending), each float32 score is rounded to 4
    decimals in double precision and stored back as a float32 (`(float) (Math.round(score * 1e4) /
    1e4)`, `Math.round` = floor(x + 0.5), exact here); a score at most `1e-4f` below the previous stored
    score (itself lowered, if it was a tie) is a tie, and the d-th tie in a row is lowered by
    `1e-6f * d`, in float32 arithmetic. The same operations in the same precisions as Anserini 1.7.1's
    bytecode, so 6 decimals print the same text. Bulk float32 conversions go through `array("f")`.
    """
    values = array("f", [math.floor(x * 1e4 + 0.5) / 1e4 for x in array("f", scores)]).tolist()
    gaps = array("f", [a - b for a, b in zip(values, values[1:], strict=False)]).tolist()  # float32(prev - this)
    last = 0  # the last position a run of ties reached
    for first in [i for i, gap in enumerate(gaps, 1) if not gap > _F32_1E_4]:
        if first <= last:
            continue
        ties, i = 0, first
        while i < len(values) and not (gaps[i - 1] if not ties else _f32(values[i - 1] - values[i])) > _F32_1E_4:
            ties += 1
            values[i] = _f32(values[i] - _f32(_F32_1E_6 * ties))
            i += 1
        last = i - 1
    return values


def anserini_score_text(score: float) -> str:
    """A score as pyserini's `search` CLI writes it (6 decimals)."""
    return f"{score:.6f}"


def parse_hits(text: str) -> list[Hit]:
    """Hits from `Arrays.toString(FieldDoc[])`; a format change (another Lucene) fails loudly."""
    hits = [(bytes.fromhex(hexid).decode("utf-8"), float(score)) for score, hexid in _HIT.findall(text)]
    if len(hits) != text.count("doc="):
        raise RearankError("unexpected Lucene hit format (Lucene version changed?): " + text[:120])
    return hits


def _default_fields(reader: Any, index_dir: str) -> dict[str, float]:
    """`contents`, plus `title` for a BEIR multifield index (as Anserini's multifield regressions)."""
    manifest = os.path.join(index_dir, MANIFEST)
    if os.path.exists(manifest):
        with open(manifest, "rb") as handle:
            names = orjson.loads(handle.read()).get("fields", [])
    else:
        infos = java.autoclass("org.apache.lucene.index.FieldInfos").getMergedFieldInfos(reader)
        info = infos.fieldInfo("title")
        names = ["title"] if info is not None and info.getIndexOptions().toString() != "NONE" else []
    return {"contents": 1.0, **{name: 1.0 for name in names}}


def check_bm25(k: int, k1: float, b: float) -> None:
    """InputError for a search that cannot work: k >= 1 hits, k1 >= 0, 0 <= b <= 1."""
    if k < 1:
        raise InputError(f"-k must be at least 1, got {k}")
    if k1 < 0 or not 0 <= b <= 1:
        raise InputError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1} b={b}")


def search_all(searcher: Bm25Searcher, queries: Sequence[tuple[str, str]], k: int, threads: int = 1,
               on_done: Callable[[], None] | None = None, remove_query: bool = False,
               ) -> Iterator[tuple[str, list[Hit]]]:
    """Yield `(qid, hits)` in query order while `threads` worker threads search ahead (bounded);
    `remove_query` drops hits whose docid is the qid (BEIR's convention)."""
    for qid, hits in _search(searcher, queries, k, threads, on_done):
        yield qid, [hit for hit in hits if hit[0] != qid] if remove_query else hits


def _search(searcher: Bm25Searcher, queries: Sequence[tuple[str, str]], k: int, threads: int,
            on_done: Callable[[], None] | None) -> Iterator[tuple[str, list[Hit]]]:
    if threads <= 1 or len(queries) <= 1:
        for qid, text in queries:
            hits = searcher.search(text, k)
            if on_done:
                on_done()
            yield qid, hits
        return
    yield from _threaded(searcher, queries, k, threads, on_done)


def _threaded(searcher: Bm25Searcher, queries: Sequence[tuple[str, str]], k: int, threads: int,
              on_done: Callable[[], None] | None) -> Iterator[tuple[str, list[Hit]]]:
    tasks: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    ahead = threading.Semaphore(4 * threads + 16)  # bounds results held for the writer
    results: dict[int, Any] = {}
    done = threading.Condition()
    stop = threading.Event()

    def worker() -> None:
        try:
            while not stop.is_set():
                ahead.acquire()
                index = tasks.get()
                if index is None or stop.is_set():
                    return
                try:
                    outcome: Any = searcher.search(queries[index][1], k)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    outcome = exc
                with done:
                    results[index] = outcome
                    done.notify_all()
        finally:
            java.detach()

    for index in range(len(queries)):
        tasks.put(index)
    workers = [threading.Thread(target=worker, name=f"bm25-{n}", daemon=True) for n in range(threads)]
    for thread in workers:
        tasks.put(None)
        thread.start()
    try:
        for index, (qid, _) in enumerate(queries):
            with done:
                done.wait_for(partial(results.__contains__, index))
                outcome = results.pop(index)
            ahead.release()
            if isinstance(outcome, BaseException):
                raise outcome
            if on_done:
                on_done()
            yield qid, outcome
    finally:
        stop.set()
        for _ in workers:
            ahead.release()
