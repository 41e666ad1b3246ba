"""Docs that cannot go stale: the README and docs/*.md against the code.

- every shell or Python block either runs here (a named example, the quickstart) or says what it needs
  (`# needs: ...`) and is syntax-checked;
- the examples run on a CPU as written, and what the page says they print is what they print;
- every flag named in the docs exists in that command's options (read from the Typer app);
- every table with measured numbers says where they come from, and a reproduction row that names a test
  holds the numbers that test asserts;
- `mkdocs build --strict` passes; the README stays short and links a page per command.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rearank_cli.cli import app
from rearank_cli.commands import COMMANDS
from tests.docs_examples import (
    CODE_LANGS,
    DOCS,
    README,
    ROOT,
    Block,
    all_blocks,
    blocks,
    examples,
    outputs,
    pages,
    tables,
)

#: examples other tests run: the Python API example (tests/test_api.py), the prompt family
#: (tests/test_prompt_registry.py), the window strategy (tests/rerank/test_strategy_registry.py) and the
#: quickstart (below)
RUN_ELSEWHERE = {"python-api", "quickstart", "prompt-family", "window-strategy"}
#: examples that start the JVM, vLLM or a model: end to end, so marked slow
SLOW_EXAMPLES = {"retrieve-scifact-slice", "doctor-tiny", "config-index-retrieve"}


def code_blocks() -> list[Block]:
    return [block for block in all_blocks() if block.lang in CODE_LANGS]


# ---------------------------------------------------------------- every example runs or says what it needs


@pytest.mark.parametrize("block", code_blocks(), ids=lambda block: block.where)
def test_every_program_block_runs_in_a_test_or_says_what_it_needs(block):
    assert block.example or block.needs, (
        f"{block.where}: a {block.lang} block must be a named example (<!-- example:NAME -->) that a test runs, "
        "or start with '# needs: ...' (GPU, network, SLURM, data not in the checkout)")
    if block.needs is not None:
        assert block.needs, f"{block.where}: '# needs:' says nothing"


@pytest.mark.parametrize("block", code_blocks(), ids=lambda block: block.where)
def test_program_blocks_are_valid_syntax(block, tmp_path):
    if block.lang == "python":
        compile(block.code, block.where, "exec")
        return
    script = tmp_path / "block.sh"
    script.write_text(block.code)
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, f"{block.where}: {result.stderr}"


def test_text_blocks_hold_no_shell_sessions():
    """A `$ command` line in a text block would be an example nobody runs."""
    for block in all_blocks():
        if block.lang not in CODE_LANGS:
            prompts = [line for line in block.code.splitlines() if line.startswith("$ ")]
            assert not prompts, f"{block.where}: a shell session in a text block: {prompts[0]}"


def test_outputs_belong_to_examples():
    named = examples()
    for name, block in outputs().items():
        assert name in named, f"{block.where}: output:{name} has no example:{name}"


def run_example(code: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a shell example as written, in `cwd` with the checkout's sample_runs/ beside it and this
    interpreter's environment (its `rearank` and `python`) first on PATH."""
    (cwd / "sample_runs").symlink_to(ROOT / "sample_runs")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "TQDM_DISABLE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def normalized(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def runnable() -> list:
    params = []
    for name, block in sorted(examples().items()):
        if name in RUN_ELSEWHERE:
            continue
        marks = [pytest.mark.slow] if name in SLOW_EXAMPLES else []
        params.append(pytest.param(name, block, id=name, marks=marks))
    return params


@pytest.mark.parametrize("name,block", runnable())
def test_examples_run_as_written(name, block, tmp_path):
    assert block.lang == "bash", f"{block.where}: example {name} is {block.lang}; only bash examples run here"
    result = run_example(block.code, tmp_path)
    assert result.returncode == 0, f"{block.where}: example {name} failed:\n{result.stderr[-3000:]}"
    shown = outputs().get(name)
    if shown is not None:
        printed = set(normalized(result.stdout + "\n" + result.stderr))
        missing = [line for line in normalized(shown.code) if line not in printed]
        assert not missing, f"{shown.where}: the page shows lines example {name} does not print: {missing}"


def quickstart_blocks(path: Path) -> tuple[Block, Block]:
    found = blocks(path)
    code = [block for block in found if block.marker == "quickstart"]
    shown = [block for block in found if block.output_of == "quickstart"]
    assert len(code) == 1 and len(shown) == 1, f"{path}: one <!-- quickstart --> block and its output"
    return code[0], shown[0]


def test_the_quickstart_is_the_same_in_the_readme_and_the_site():
    readme_code, readme_out = quickstart_blocks(README)
    site_code, site_out = quickstart_blocks(DOCS / "index.md")
    assert readme_code.code == site_code.code and readme_out.code == site_out.code
    text = README.read_text()
    assert text.index("<!-- quickstart -->") < text.index("<!-- /quickstart -->")


@pytest.mark.slow
def test_the_quickstart_runs_offline_as_written(tmp_path):
    """The README's quickstart, as written, offline: the reranked run, its report and the eval table,
    whose BM25 row is exactly the README's (the reranked row depends on the model's text)."""
    code, shown = quickstart_blocks(README)
    env_offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    os.environ.update(env_offline)
    result = run_example(code.code, tmp_path, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = normalized(result.stdout)
    expected = normalized(shown.code)
    assert rows[0] == expected[0]  # the header
    assert expected[1] in rows  # BM25 on the 6 queries
    demo = [row for row in rows if row.startswith("demo.trec ")]
    assert len(demo) == 1 and len(demo[0].split()) == len(expected[2].split())
    assert (tmp_path / "demo.html").stat().st_size > 0
    manifest = json.loads((tmp_path / "demo.trec.manifest.json").read_text())
    missing = [key for key in manifest_keys(manifest) if key not in documented_names("formats.md")]
    assert not missing, f"docs/formats.md does not describe the rerank manifest's {missing}"
    header = json.loads((tmp_path / "demo.trec.trace.jsonl").read_text().splitlines()[0])
    missing = [key for key in header if key != "type" and key not in documented_names("formats.md")]
    assert not missing, f"docs/formats.md does not describe the journal header's {missing}"


# ---------------------------------------------------------------- flags named in the docs exist


def command_options() -> dict[str, set[str]]:
    """{command: its option spellings}; '' is the root (`rearank --debug`)."""
    group = typer.main.get_command(app)
    options = {"": {opt for param in group.params for opt in (*param.opts, *param.secondary_opts)} | {"-h", "--help"}}
    for name, command in group.commands.items():
        options[name] = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        options[name] |= {"-h", "--help"}
    return options


_COMMAND = re.compile(r"(?:(?<![\w/.-])rearank|-m rearank_cli)((?:\s+--debug)?)\s+(-{1,2}[\w-]+|[a-z]+)")
_STOP = re.compile(r"\s(?:\||&&|;|>|<|#)\s|[\"')`]|$")


def commands_in(text: str) -> list[tuple[str, list[str]]]:
    """(subcommand, flags) of each `rearank SUB ...` in `text` (continuation lines joined: after a
    backslash, or indented under the line before, as in a synopsis). A line starting `rearank:` is a
    message rearank prints, not a command."""
    text = re.sub(r"\\\n|\n(?=    )", " ", text)
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("rearank:"):
            continue
        for match in _COMMAND.finditer(line):
            sub = match.group(2)
            rest = line[match.end():] if not sub.startswith("-") else line[match.start(2):]
            rest = rest[:_STOP.search(rest).start()]
            flags = []
            for token in rest.split():
                for part in re.split(r"[|\[\]()]", token):
                    if re.fullmatch(r"-{1,2}[A-Za-z][\w-]*(=.*)?", part):
                        flags.append(part.split("=", 1)[0])
            found.append(("" if sub.startswith("-") else sub, flags))
    return found


def doc_commands() -> list:
    params = []
    for path in pages():
        text = path.read_text()
        spans = [block.code for block in blocks(path)] + re.findall(r"`([^`\n]+)`", text)
        for span in spans:
            for sub, flags in commands_in(span):
                params.append((path.relative_to(ROOT), sub, flags, span.strip().splitlines()[0][:80]))
    return params


def test_every_flag_in_the_docs_exists_in_its_command():
    options = command_options()
    wrong = []
    for path, sub, flags, where in doc_commands():
        if sub not in options:
            wrong.append(f"{path}: unknown command 'rearank {sub}' in {where!r}")
            continue
        wrong += [f"{path}: rearank {sub} has no {flag} ({where!r})" for flag in flags if flag not in options[sub]]
    assert not wrong, "\n".join(wrong)


#: long flags of other tools that the docs name in prose (each with its tool), not rearank's
FOREIGN_FLAGS = {
    "--array": "sbatch", "--dependency": "sbatch", "--wrap": "sbatch", "--signal": "sbatch, scancel",
    "--open-mode": "sbatch", "--gres": "sbatch", "--cpus-per-task": "sbatch", "--nodes": "sbatch",
    "--gpus-per-node": "sbatch", "--parsable": "sbatch", "--batch": "scancel", "--full": "scancel",
    "--no-deps": "pip", "--index-url": "pip", "--force-reinstall": "pip", "--cfg": "VeRL's Hydra",
    "--resolve": "VeRL's Hydra", "--config_file": "accelerate", "--enable-lora": "vllm serve",
    "--max-lora-rank": "vllm serve", "--lora-modules": "vllm serve", "--port": "vllm serve",
    "--model": "vllm's api_server",
    "--context-size": "rank-llm", "--max-passage-words": "rank-llm", "--num-few-shot-examples": "rank-llm",
    "--use-alpha": "rank-llm", "--is-thinking": "rank-llm",
}


def bench_flags() -> set[str]:
    """The options the benchmark scripts in bench/ define (argparse string literals)."""
    return {flag for script in (ROOT / "bench").glob("*.py") for flag in re.findall(r"[\"'](--[\w-]+)[\"']",
                                                                                       script.read_text())}


def test_every_long_flag_named_in_prose_exists():
    """A backticked `--flag` anywhere in the docs is some command's flag (or another tool's, listed)."""
    known = set().union(*command_options().values()) | set(FOREIGN_FLAGS) | bench_flags()
    wrong = []
    for path in pages():
        for span in re.findall(r"`(--[\w-]+)", path.read_text()):
            if span not in known:
                wrong.append(f"{path.relative_to(ROOT)}: {span}")
    assert not wrong, "flags no command has:\n" + "\n".join(sorted(set(wrong)))


# ---------------------------------------------------------------- config files in the docs are read


_CONFIG_FILE = re.compile(r"^cat > (\S+\.toml) <<'EOF'\n(.*?)^EOF$", re.M | re.S)


def config_files() -> list:
    """(where, file name, TOML text, the commands that read it with `--config`) of every config file a
    program block writes with a here-document."""
    found = []
    for block in code_blocks():
        for name, body in _CONFIG_FILE.findall(block.code):
            readers = re.findall(rf"^rearank (\w+)\b.* --config {re.escape(name)}\b", block.code, re.M)
            found.append(pytest.param(block.where, name, body, readers, id=f"{block.where}:{name}"))
    return found


@pytest.mark.parametrize("where,name,body,readers", config_files())
def test_every_config_file_in_the_docs_is_read_by_its_command(where, name, body, readers, tmp_path):
    """Each documented config file, examples that need a GPU included, passes its command's checks
    (known keys, types, choices): `rearank CMD --config FILE --help` reads the file, then prints help."""
    assert readers, f"{where}: {name} is written, but no `rearank CMD ... --config {name}` reads it"
    path = tmp_path / name
    path.write_text(body)
    for command in readers:
        result = CliRunner().invoke(app, [command, "--config", str(path), "--help"])
        assert result.exit_code == 0, f"{where}: rearank {command} refuses {name}: {result.output}{result.exception}"


def test_the_conventions_page_has_a_config_example_per_command_that_writes():
    shown = {command for where, *_, readers in (param.values for param in config_files())
             if where.startswith("docs/conventions.md") for command in readers}
    missing = {"rerank", "eval", "retrieve", "index", "augment", "train", "report"} - shown
    assert not missing, f"docs/conventions.md has no --config example for {sorted(missing)}"


# ---------------------------------------------------------------- numbers say where they come from

_MEASURED = re.compile(r"(?<![\w.])\d[\d,]*\.\d+(?![\w.])")
_SOURCE = re.compile(r"source|measured|bench/|tests?/|published|paper|regression|20\d\d-\d\d-\d\d", re.I)


def test_every_table_of_numbers_says_where_they_come_from():
    """A table with decimal numbers has a source column, or its header or the lines around it name the
    source (a test, a bench script, a publication, the paper, a date of measurement)."""
    missing = []
    for path in pages():
        lines = path.read_text().splitlines()
        for start, table in tables(path):
            body = table[2:]
            if not any(_MEASURED.search(row) for row in body):
                continue
            around = lines[max(0, start - 9):start - 1] + lines[start - 1 + len(table):start + len(table) + 4]
            if not (_SOURCE.search(table[0]) or any(_SOURCE.search(line) for line in around)):
                missing.append(f"{path.relative_to(ROOT)}:{start}")
    assert not missing, "tables of numbers without a source: " + ", ".join(missing)


_TEST_REF = re.compile(r"test `(tests/[\w/]+\.py)::(\w+)`")


def test_reproduction_rows_hold_the_numbers_their_tests_assert():
    """A row whose source is `test FILE::NAME`: that test exists and its file holds every number of the
    row's rearank column."""
    checked = 0
    for path in pages():
        for _, table in tables(path):
            header = [cell.strip().lower() for cell in table[0].strip("|").split("|")]
            if "source" not in header or "rearank" not in header:
                continue
            for row in table[2:]:
                cells = [cell.strip() for cell in row.strip("|").split("|")]
                refs = _TEST_REF.findall(cells[header.index("source")])
                for file, name in refs:
                    source = (ROOT / file).read_text()
                    assert re.search(rf"def {name}\(", source), f"{path.name}: {file} has no test {name}"
                    for number in _MEASURED.findall(cells[header.index("rearank")]):
                        assert number in source, f"{path.name}: {file} does not assert {number} ({row})"
                    checked += 1
    assert checked >= 5


# ---------------------------------------------------------------- the site and the README


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the [docs] extra (scripts/setup.sh installs it)")
    pytest.importorskip("material", reason="mkdocs-material, the [docs] extra")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert 'id="rearank_cli.api.Reranker"' in api and 'id="rearank_cli.api.evaluate"' in api
    assert "report.png" in (tmp_path / "site" / "report" / "index.html").read_text()


def test_the_readme_is_short_and_links_a_page_per_command():
    text = README.read_text()
    assert len(text.encode()) <= 12 * 1024
    for name, _ in COMMANDS:
        row = re.search(rf"^\| `rearank {name}` \|.*\((docs/[\w.]+\.md)\)", text, re.M)
        assert row, f"README's command table has no row linking a page for {name}"
        assert (ROOT / row.group(1)).is_file()
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).is_file(), link


def test_the_docs_speak_of_the_tool_only():
    """No build history and no developer machine paths."""
    banned = re.compile(r"/work/|/home/\w|\.\./shared|this task|the brief|was lent|Measured here", re.I)
    for path in pages():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not banned.search(line), f"{path.relative_to(ROOT)}:{number}: {line.strip()}"


def test_the_nav_lists_every_page():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in DOCS.glob("*.md"):
        assert f" {page.name}" in nav, f"mkdocs.yml nav lacks {page.name}"


def test_screenshots_are_on_the_report_page():
    text = (DOCS / "report.md").read_text()
    for image in ("report.png", "report-window.png"):
        assert f"]({image})" in text and (DOCS / image).is_file()


# ---------------------------------------------------------------- file formats against the records


def documented_names(page: str) -> set[str]:
    """Every backticked name on a docs page (table cells list several: `prompt_tokens`, `completion_tokens`)."""
    return set(re.findall(r"`([\w.]+)`", (DOCS / page).read_text()))


def manifest_keys(manifest: dict, prefix: str = "") -> list[str]:
    """The manifest's keys, and `summary.X` for the summary's (the parts formats.md describes field by field)."""
    keys = [prefix + key for key in manifest]
    if not prefix and isinstance(manifest.get("summary"), dict):
        keys += manifest_keys(manifest["summary"], "summary.")
    return keys
