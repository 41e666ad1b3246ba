"""Anserini's `IndexCollection` through jnius, on corpora validated first.

BEIR corpora are indexed as BEIR "flat" (`BeirFlatCollection`, title and text in one field; or
`BeirMultifieldCollection` with `--fields title`), pyserini `{"id","contents"}` corpora as
`JsonCollection`, always with the raw document stored so `docstore.read_index_texts` returns the same
text as the JSONL reader (`rearank_cli.formats.corpus.parse_doc` on the stored raw JSON). The index is
built beside its destination and renamed into place, so a failed or interrupted build leaves nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from rearank_cli.errors import InputError, RearankError
from rearank_cli.formats.corpus import parse_doc
from rearank_cli.formats.textio import GZIP_MAGIC, current_umask, iter_lines
from rearank_cli.lucene import java
from rearank_cli.lucene.docstore import is_lucene_index

log = logging.getLogger("rearank")

#: the manifest `rearank index` writes into the index folder
MANIFEST = "rearank-index.json"
JSON, BEIR = "JsonCollection", "BeirFlatCollection"
MULTIFIELD = "BeirMultifieldCollection"
WHITESPACE = re.compile(r"\s")


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


def _record_format(record: dict[str, Any]) -> str:
    """JSON (pyserini `contents`) or BEIR (`text`); parse_doc already checked one of them exists."""
    return JSON if "contents" in record else BEIR


def _is_native(record: dict[str, Any], collection: str) -> bool:
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
            if WHITESPACE.search(docid):
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


def prepare_output(out_dir: str) -> None:
    """Refuse to replace anything but an empty directory or a Lucene index."""
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise InputError("exists and is not a directory", out_dir)
        if os.listdir(out_dir) and not is_lucene_index(out_dir):
            raise InputError("exists, is not empty and is not a Lucene index; refusing to replace it", out_dir)


def _index_args(plan: CorpusPlan, input_dir: str, index_dir: str, threads: int, fields: Sequence[str]) -> list[str]:
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

    java.ready()
    parser_class = java.autoclass("org.kohsuke.args4j.CmdLineParser")
    index_args = java.autoclass("io.anserini.index.IndexCollection$Args")()
    try:
        parser_class(index_args).parseArgument(*args)
        indexer = java.autoclass("io.anserini.index.IndexCollection")(index_args)
    except Exception as exc:  # noqa: BLE001 - jnius raises JavaException
        raise RearankError(f"Anserini could not start indexing: {java.message(exc)}") from exc
    counters = indexer.getCounters()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            indexer.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            failure.append(exc)
        finally:
            java.detach()

    worker = threading.Thread(target=work, name="anserini-index", daemon=True)
    with tqdm(total=total, desc="index", unit="doc", file=sys.stderr, disable=None if progress else True) as bar:
        worker.start()
        while worker.is_alive():
            worker.join(0.5)
            bar.n = int(counters.indexed.get())
            bar.refresh()
    if failure:
        raise RearankError(f"Anserini indexing failed: {java.message(failure[0])}")
    return {name: int(getattr(counters, name).get())
            for name in ("indexed", "empty", "unindexable", "skipped", "errors")}


def build(plan: CorpusPlan, out_dir: str, threads: int, fields: Sequence[str], progress: bool,
          manifest: Callable[[dict[str, int]], dict[str, Any]]) -> dict[str, Any]:
    """Stage, index beside `out_dir`, then rename into place; temporary folders never outlive the call.

    `manifest(counters)` turns Anserini's counters into the manifest written as `MANIFEST` (it may raise
    to refuse the index); that manifest is returned."""
    parent = os.path.dirname(os.path.abspath(out_dir))
    name = os.path.basename(os.path.abspath(out_dir))
    staging = tempfile.mkdtemp(prefix=f".{name}.input.", dir=parent)
    building = tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent)
    try:
        stage_inputs(plan, staging)
        args = _index_args(plan, staging, building, threads, fields)
        log.info("indexing %d documents (%s) with Anserini, %d thread(s)", plan.docs,
                 MULTIFIELD if fields else plan.collection, threads)
        summary = manifest(_run_indexer(args, plan.docs, progress))
        with open(os.path.join(building, MANIFEST), "wb") as handle:
            handle.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(building, "write.lock"))
        os.chmod(building, 0o777 & ~current_umask())
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


def check_counts(summary: dict[str, Any]) -> None:
    """Every validated document is indexed, except empty ones (Anserini skips them; BM25 never finds them)."""
    if summary["empty"]:
        log.warning("%d document(s) with empty text were not indexed", summary["empty"])
    lost = summary["documents"] - summary["indexed"] - summary["empty"]
    if lost or summary["errors"] or summary["unindexable"]:
        raise RearankError(
            f"Anserini indexed {summary['indexed']} of {summary['documents']} documents "
            f"(errors {summary['errors']}, unindexable {summary['unindexable']}, skipped {summary['skipped']}); "
            "rerun with --debug for Anserini's log")
