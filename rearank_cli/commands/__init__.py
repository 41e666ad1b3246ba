"""Subcommand signatures, one module each. Modules here import only typer and the standard library."""

from collections.abc import Callable
from typing import Any

from rearank_cli.commands.augment import augment
from rearank_cli.commands.doctor import doctor
from rearank_cli.commands.eval import evaluate
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
    ("merge", merge),
    ("train", train),
    ("eval", evaluate),
    ("report", report),
    ("doctor", doctor),
]
