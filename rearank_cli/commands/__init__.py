"""Subcommand signatures, one module each. Modules here import only typer and the standard library."""

from rearank_cli.commands.augment import augment
from rearank_cli.commands.doctor import doctor
from rearank_cli.commands.eval import evaluate
from rearank_cli.commands.report import report
from rearank_cli.commands.rerank import merge, rerank
from rearank_cli.commands.retrieve import index, retrieve
from rearank_cli.commands.train import train

COMMANDS = [
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
