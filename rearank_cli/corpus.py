"""Document text lookup behind one function: a JSONL corpus or a Lucene index with raw docs.

`fetch_texts(source, wanted)` returns `{docid: text}` for the wanted docids only, so a big corpus is
never held in Python objects: a JSONL file is streamed once keeping only the wanted docs, and a
Lucene index built by `rearank index` (stored raw documents) is read doc by doc.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from rearank_cli.formats.corpus import load_texts


def is_lucene_index(path: str) -> bool:
    """True when `path` is a directory holding a Lucene index (a `segments_N` file)."""
    return os.path.isdir(path) and any(name.startswith("segments_") for name in os.listdir(path))


def fetch_texts(source: str, wanted: Collection[str]) -> dict[str, str]:
    """Texts of `wanted` docids from a JSONL(.gz) corpus or a Lucene index directory.

    Docids absent from the source are simply absent from the result; callers decide whether that
    is an error (`--skip-missing`).
    """
    if os.path.isdir(source):
        from rearank_cli.retrieve import read_index_texts

        return read_index_texts(source, wanted)
    return load_texts(source, set(wanted))
