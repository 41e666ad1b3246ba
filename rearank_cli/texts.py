"""Passage text for a set of docids, from a JSONL corpus or a Lucene index: the one text loader behind
`--corpus` (rerank, augment, report).

`fetch_texts(source, wanted)` returns `{docid: text}` for the wanted docids only, so a big corpus is
never held in Python objects: a JSONL file is streamed once keeping only the wanted docs
(`formats.corpus.load_texts`), and a Lucene index built by `rearank index` (stored raw documents) is
read doc by doc (`lucene.docstore.read_index_texts`, imported only then: it starts the JVM).
"""

from __future__ import annotations

import os
from collections.abc import Collection

from rearank_cli.formats.corpus import load_texts


def fetch_texts(source: str, wanted: Collection[str]) -> dict[str, str]:
    """Texts of `wanted` docids from a JSONL(.gz) corpus or a Lucene index directory.

    Docids absent from the source are simply absent from the result; callers decide whether that
    is an error (`--skip-missing`).
    """
    if os.path.isdir(source):
        from rearank_cli.lucene.docstore import read_index_texts

        return read_index_texts(source, wanted)
    return load_texts(source, set(wanted))
