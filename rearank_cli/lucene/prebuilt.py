"""pyserini's names: prebuilt BM25 indexes (downloaded into pyserini's cache) and topic sets (Anserini's)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from rearank_cli.errors import InputError, RearankError
from rearank_cli.formats.topics import read_topics
from rearank_cli.lucene import java
from rearank_cli.lucene.docstore import is_lucene_index

log = logging.getLogger("rearank")


def resolve_index(spec: str, vllm_guard: bool = True) -> str:
    """A Lucene index directory from a path or a pyserini prebuilt index name (downloaded if possible).
    A name starts the JVM (`java.start`'s `vllm_guard`)."""
    if os.path.isdir(spec):
        if not is_lucene_index(spec):
            raise InputError("is not a Lucene index (no segments_N file); build one with `rearank index`", spec)
        return spec
    if os.path.exists(spec):
        raise InputError("is a file, expected a Lucene index directory or a pyserini prebuilt index name", spec)
    java.ready(vllm_guard)  # pyserini modules import pyserini.pyclass, which must find our JVM already running
    from pyserini.prebuilt_index_info import TF_INDEX_INFO

    if spec not in TF_INDEX_INFO:
        raise InputError("no such index directory, and not a pyserini prebuilt (BM25) index name", spec)
    from pyserini.util import download_prebuilt_index

    try:
        with contextlib.redirect_stdout(sys.stderr):
            return str(download_prebuilt_index(spec, verbose=False))
    except Exception as exc:  # noqa: BLE001 - network errors come in many types
        raise RearankError(
            f"cannot download pyserini prebuilt index {spec!r} (no network here?): {' '.join(str(exc).split())[:200]}; "
            "build one with `rearank index` or pass a local index directory") from None


def load_topics(spec: str, vllm_guard: bool = True) -> dict[str, str]:
    """Topics from a file (TSV or BEIR queries.jsonl, gzip ok, `-` = stdin) or a pyserini topic set name.
    A name starts the JVM (`java.start`'s `vllm_guard`)."""
    if spec == "-" or os.path.exists(spec):
        return read_topics(spec)
    java.ready(vllm_guard)
    from pyserini.search._base import get_topics, topics_mapping

    if spec not in topics_mapping:
        raise InputError("no such topics file, and not a pyserini topic set name", spec)
    try:
        raw = get_topics(spec)
    except Exception as exc:  # noqa: BLE001 - Anserini downloads topics; offline it raises
        raise RearankError(
            f"cannot load pyserini topics {spec!r}: Anserini downloads them and that failed (no network here?): "
            f"{java.message(exc)[:200]}; pass a topics file instead") from None
    topics = {}
    for qid, fields in raw.items():
        text = fields.get("title") or next(iter(fields.values()), "")
        if str(text).strip():
            topics[str(qid)] = " ".join(str(text).split())
    if len(topics) < len(raw):
        log.warning("%s: skipped %d topic(s) with an empty query", spec, len(raw) - len(topics))
    return topics
