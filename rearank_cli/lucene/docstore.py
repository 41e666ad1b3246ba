"""Documents stored in an index built by `rearank index` (raw JSON kept with `-storeRaw`), read back by docid."""

from __future__ import annotations

import os
from collections.abc import Collection

from rearank_cli.errors import InputError
from rearank_cli.formats.corpus import parse_doc
from rearank_cli.lucene import java
from rearank_cli.lucene.threads import available_cpus, parallel


def is_lucene_index(path: str) -> bool:
    """True when `path` is a directory holding a Lucene index (a `segments_N` file)."""
    return os.path.isdir(path) and any(name.startswith("segments_") for name in os.listdir(path))


def read_index_texts(index_dir: str, wanted: Collection[str], threads: int | None = None) -> dict[str, str]:
    """Texts of `wanted` docids from an index with stored raw documents, exactly as the JSONL reader gives
    them (`parse_doc` on the stored raw JSON). Docids not in the index are absent from the result.
    Lookups run on `threads` threads (default: the CPUs available)."""
    java.ready()
    utils = java.autoclass("io.anserini.index.IndexReaderUtils")
    try:
        reader = utils.getReader(index_dir)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot open Lucene index: {java.message(exc)}", index_dir) from None
    try:
        if java.autoclass("org.apache.lucene.index.FieldInfos").getMergedFieldInfos(reader).fieldInfo("raw") is None:
            raise InputError("index stores no raw documents (build it with `rearank index`)", index_dir)
        docids = list(dict.fromkeys(wanted))
        raws = parallel(lambda docid: utils.documentRaw(reader, docid), docids, threads or available_cpus())
        return {docid: parse_doc(raw, f"{index_dir} (stored raw of {docid!r})", None)[1]
                for docid, raw in zip(docids, raws, strict=True) if raw is not None}
    finally:
        reader.close()
