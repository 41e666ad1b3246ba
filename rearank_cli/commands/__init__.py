"""Subcommand signatures, one module each. Modules here import only typer and the standard library."""

from collections.abc import Callable
from typing import Any

from rearank_cli.commands.augment import augment
from rearank_cli.commands.doctor import doctor
from rearank_cli.commands.eval import evaluate
from rearank_cli.commands.prompt import prompt
from rearank_cli.commands.report import report
from rearank_cli.commands.rerank import merge, rerank
from rearank_cli.commands.retrieve import index, retrieve
from rearank_cli.commands.train import train

#: (name, function) of every subcommand, in `rearank --help` order
COMMANDS: list[tuple[str, Callable[..., Any]]] = [
    ("index", index),
    ("retrieve", retrieve),
    ("augment", augment),
    ("rerank", rerank),
    ("prompt", prompt),
    ("merge", merge),
    ("train", train),
    ("eval", evaluate),
    ("report", report),
    ("doctor", doctor),
]

#: name -> (its line in `rearank --help`, short enough not to be cut, and its page under docs/)
ABOUT: dict[str, tuple[str, str]] = {
    "index": ("Build a BM25 Lucene index from JSONL corpora.", "retrieve.md"),
    "retrieve": ("Retrieve the BM25 top-k hits of each topic.", "retrieve.md"),
    "augment": ("Sample REARANK training windows from a run and qrels.", "augment.md"),
    "rerank": ("Rerank a TREC run with an LLM, window by window.", "rerank.md"),
    "prompt": ("List the prompt families; print one window's messages.", "prompt.md"),
    "merge": ("Join the outputs of `rerank --shard`.", "merge.md"),
    "train": ("Train a reasoning reranker with GRPO (TRL).", "train.md"),
    "eval": ("Evaluate runs as trec_eval does, with significance tests.", "eval.md"),
    "report": ("Write one offline HTML page of what the reranker did.", "report.md"),
    "doctor": ("Check what works on this machine for a backend.", "doctor.md"),
}


def docs_pointer(page: str) -> str:
    """The line that ends a `--help`: where the command's documentation is, without a URL."""
    return f"Documentation: docs/{page}"
