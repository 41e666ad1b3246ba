"""The CLI skeleton: help, version, exit codes, lazy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rearank_cli.cli import run

HEAVY = ["torch", "vllm", "transformers", "jnius", "pyserini", "trl", "pytrec_eval"]


def test_help_lists_subcommands(cli):
    result = cli("--help")
    assert result.returncode == 0
    out = result.stdout.decode()
    # the rows of the "Commands:" block (the app's own description also names some commands)
    listed = [line.split()[0] for line in commands_block(out)]
    assert listed == ["index", "retrieve", "augment", "rerank", "prompt", "merge", "train", "eval", "report", "doctor"]


def commands_block(help_text: str) -> list[str]:
    """The rows of `rearank --help`'s "Commands:" block (up to the blank line before the epilog)."""
    return help_text.split("Commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()


def test_help_summaries_are_whole_and_end_with_the_docs_page(capsys):
    """No command summary is cut with "..."; every `--help` ends with its docs page (no URL)."""
    from pathlib import Path

    from rearank_cli.commands import ABOUT, COMMANDS

    root = Path(__file__).resolve().parent.parent
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    rows = commands_block(out)
    assert not [row for row in rows if "..." in row], rows
    assert rows == [f"  {name:<8}  {ABOUT[name][0]}" for name, _ in COMMANDS]
    assert out.rstrip().endswith("docs/conventions.md.") and "README.md and docs/index.md" in out
    for name, _ in COMMANDS:
        assert run([name, "--help"]) == 0
        last = capsys.readouterr().out.rstrip().splitlines()[-1].strip()
        assert last.startswith("Documentation: docs/") and "://" not in last, (name, last)
        assert (root / last.split(": ", 1)[1]).is_file(), last


def test_help_texts_are_sentences():
    """Every flag's help (declared once, in `rearank_cli.settings`) is a sentence: a capital (or a
    `vllm:`/`hf:`/`openai:` prefix), three words or more, a full stop before any `[default: ...]`."""
    import re

    from rearank_cli.commands import COMMANDS
    from rearank_cli.settings.base import iter_fields

    for name, function in COMMANDS:
        for field, spec, _ in iter_fields(*function.settings):
            text = re.sub(r"\s*\[default:[^\]]*\]", "", spec.help)
            body = re.sub(r"^(vllm|hf|openai): ", "", text)
            assert (body[:1].isupper() or body != text) and len(body.split()) >= 3, (name, field.name, spec.help)
            assert body.endswith("."), (name, field.name, spec.help)


def test_version(cli):
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.decode().startswith("rearank ")


def test_help_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from rearank_cli.cli import run\n"
        "rc = run(['--help'])\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert rc == 0, rc\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_unknown_command_is_usage_error(capsys):
    assert run(["nonsense"]) == 2


def test_unknown_option_is_usage_error(capsys):
    assert run(["--no-such-flag"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rearank: error: No such option: --no-such-flag (see 'rearank --help')"]


def test_bad_flag_value_is_one_line(cli):
    result = cli("augment", "sample_runs/dl19-bm25-top100.trec", "--qrels", "x", "--samples-per-query", "0")
    assert result.returncode == 2
    err = result.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rearank: error: Invalid value for '--samples-per-query'"), err
    assert "'rearank augment --help'" in err[0]


def test_sampling_settings_are_validated(capsys):
    candidates = "sample_runs/dl19-bm25-top100.candidates.json.gz"  # real inputs: the flag is what fails
    for flag, value in [("--temperature", "-1"), ("--top-p", "-0.1"), ("--top-p", "1.5")]:
        assert run(["rerank", "sample_runs/dl19-bm25-top100.trec", "--candidates", candidates, flag, value,
                    "-o", "-"]) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"rearank: error: Invalid value for '{flag}'"), line


def test_debug_lasts_one_call_only(tmp_path, monkeypatch):
    """`--debug` re-raises in its own call; a later call without it exits 2 as usual."""
    monkeypatch.delenv("REARANK_DEBUG", raising=False)
    missing = ["rerank", "sample_runs/dl19-bm25-top100.trec", "--topics", str(tmp_path / "no-topics.tsv"),
               "--corpus", str(tmp_path / "no-corpus.jsonl"), "-o", str(tmp_path / "out.trec")]
    from rearank_cli.errors import InputError

    with pytest.raises(InputError):
        run(["--debug", *missing])
    assert run(missing) == 2
