"""Pure readers and writers for the files rearank reads and writes."""

from rearank_cli.formats.candidates import Candidates, read_candidates, write_candidates
from rearank_cli.formats.corpus import doc_text, iter_corpus, load_texts, write_corpus
from rearank_cli.formats.textio import atomic_output, iter_lines, open_binary, open_text
from rearank_cli.formats.topics import read_topics, write_topics
from rearank_cli.formats.trec import (
    Hit,
    Qrels,
    Run,
    first_stage_order,
    read_first_stage,
    read_qrels,
    read_run,
    trec_order,
    write_qrels,
    write_run,
)

__all__ = [
    "Candidates", "Hit", "Qrels", "Run", "atomic_output", "doc_text", "first_stage_order", "iter_corpus",
    "iter_lines", "load_texts", "open_binary", "open_text", "read_candidates", "read_first_stage", "read_qrels",
    "read_run", "read_topics",
    "trec_order", "write_candidates", "write_corpus", "write_qrels", "write_run", "write_topics",
]
