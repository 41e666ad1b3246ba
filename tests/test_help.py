"""`--help` reads the same in every command: arguments named one way, what is required marked, summaries
that describe what the command does."""

from __future__ import annotations

import re

import pytest

from rearank_cli.cli import run
from rearank_cli.commands import COMMANDS

NAMES = [name for name, _ in COMMANDS]
#: an argument in a usage line: `RUN`, `[RUN]` (optional), `CORPUS...` (several), `TRAIN.jsonl`, `[NAME|FILE]`
USAGE_ARGUMENT = re.compile(r"^(\[[A-Z][A-Za-z.|]*\]|[A-Z][A-Za-z.|]*)(\.\.\.)?$")


def help_of(name: str, capsys) -> str:
    assert run([name, "--help"]) == 0
    return capsys.readouterr().out


def arguments_block(text: str) -> list[str]:
    """The names in the "Arguments:" block of a help text."""
    if "Arguments:\n" not in text:
        return []
    block = text.split("Arguments:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines() if line.startswith("  ") and not line.startswith("   ")]


@pytest.mark.parametrize("name", NAMES)
def test_arguments_are_written_one_way(name, capsys):
    text = help_of(name, capsys)
    usage = text.splitlines()[0].split()
    assert usage[:4] == ["Usage:", "rearank", name, "[OPTIONS]"]
    pieces = usage[4:]
    assert all(USAGE_ARGUMENT.match(piece) for piece in pieces), pieces
    assert arguments_block(text) == [piece.strip("[]") for piece in pieces]
    assert not re.search(r"<list\[|\{[a-z]+\}", text), name  # no Python types, no `{run}`


def test_every_command_names_its_arguments_in_capitals(capsys):
    usages = {name: help_of(name, capsys).splitlines()[0] for name in NAMES}
    assert usages == {
        "index": "Usage: rearank index [OPTIONS] CORPUS...",
        "retrieve": "Usage: rearank retrieve [OPTIONS]",
        "augment": "Usage: rearank augment [OPTIONS] RUN",
        "rerank": "Usage: rearank rerank [OPTIONS] [RUN]",
        "prompt": "Usage: rearank prompt [OPTIONS] [ACTION] [NAME|FILE|RUN]",
        "merge": "Usage: rearank merge [OPTIONS] SHARDS...",
        "train": "Usage: rearank train [OPTIONS] TRAIN.jsonl",
        "eval": "Usage: rearank eval [OPTIONS] RUN...",
        "report": "Usage: rearank report [OPTIONS] RUN...",
        "doctor": "Usage: rearank doctor [OPTIONS]",
    }


def test_train_marks_what_it_needs_required(capsys):
    """The four paths may come from --config, so the command line does not enforce them, but the help
    says they are required, and leaving them out everywhere is exit 2 naming the first."""
    text = " ".join(help_of("train", capsys).split())
    entries = ["TRAIN.jsonl Samples written", "--model <str>", "--qrels <str>", "-o, --output <str>",
               "--num-generations <int>"]
    for entry, following in zip(entries, entries[1:], strict=False):
        assert "[required]" in text.split(entry, 1)[1].split(following, 1)[0], entry
    assert "[required]" not in text.split(entries[-1], 1)[1]
    assert run(["train"]) == 2
    assert "TRAIN.jsonl" in capsys.readouterr().err


def test_help_names_no_spec_sections_and_rerank_its_strategies(capsys):
    for name in NAMES:
        assert "spec" not in help_of(name, capsys).lower(), name
    rerank = " ".join(help_of("rerank", capsys).split("Arguments:")[0].split())
    assert "sliding window" in rerank and "top-down partitioning" in rerank
