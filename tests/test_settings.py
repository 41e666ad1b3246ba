"""Every flag is declared once, in `rearank_cli.settings`: the generated Typer options, `--config FILE.toml`
(keys, types, precedence), choices checked one way, and a rerank manifest's settings reproducing its run."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import orjson
import pytest
import typer.main

from rearank_cli.cli import app, run
from rearank_cli.errors import InputError
from rearank_cli.settings.backends import BACKENDS, VllmOptions
from rearank_cli.settings.base import iter_fields
from rearank_cli.settings.commands import AugmentOptions
from rearank_cli.settings.files import read_config, to_toml
from rearank_cli.settings.rerank import RerankOptions

SAMPLES = Path(__file__).resolve().parent.parent / "sample_runs"
RUN = str(SAMPLES / "dl19-bm25-top100.trec")
QRELS = str(SAMPLES / "dl19-qrels.txt")
CANDIDATES = str(SAMPLES / "dl19-bm25-top100.candidates.json.gz")
WRITERS = ("rerank", "eval", "retrieve", "index", "augment", "train", "report")


def commands() -> dict:
    return typer.main.get_command(app).commands  # type: ignore[attr-defined]


def test_every_flag_is_declared_once_in_the_settings():
    from rearank_cli.commands import COMMANDS

    functions = dict(COMMANDS)
    for name, command in commands().items():
        params = {p.name: p for p in command.params if p.name not in ("help", "config") and not p.hidden}
        declared = [field.name for field, _, _ in iter_fields(*functions[name].settings)]
        assert sorted(params) == sorted(declared), name
        assert len(declared) == len(set(declared)), name
        flags = [flag for p in params.values() for flag in p.opts if flag.startswith("-")]
        assert len(flags) == len(set(flags)), name
        assert ("config" in {p.name for p in command.params}) == (name in WRITERS), name


def test_one_meaning_per_short_flag():
    """A short flag means the same long flag in every command; old spellings are hidden and declared."""
    meaning: dict[str, set[str]] = {}
    for name, command in commands().items():
        for param in command.params:
            shorts = [flag for flag in param.opts if not flag.startswith("--")]
            longs = [flag for flag in param.opts if flag.startswith("--")] or [param.name]
            if param.hidden:
                assert param.name.endswith("_as_" + shorts[0].lstrip("-")), (name, param.name)
                continue
            for flag in shorts:
                meaning.setdefault(flag, set()).add(longs[0])
    clashes = {flag: longs for flag, longs in meaning.items() if len(longs) > 1}
    assert not clashes
    assert meaning["-m"] == {"--measure"} and meaning["-o"] == {"--output"}
    hidden = {(name, p.opts[0]) for name, c in commands().items() for p in c.params if p.hidden}
    assert hidden == {("rerank", "-m"), ("doctor", "-m")}


def test_registries_match_the_declared_names():
    from rearank_cli.backends import BACKENDS as LOADERS
    from rearank_cli.prompts.registry import family_names

    assert RerankOptions.prompt == family_names()[0]
    assert tuple(BACKENDS) == tuple(LOADERS) == RerankOptions.choices("backend")


def test_api_and_core_defaults_are_the_declared_ones():
    import inspect

    from rearank_cli.api import Reranker
    from rearank_cli.backends.base import Sampling
    from rearank_cli.rerank.plan import RerankSettings
    from rearank_cli.rerank.strategies.sliding import fixed_windows

    params = inspect.signature(Reranker).parameters
    for name in ("prompt", "window", "step", "depth", "passes", "window_schedule", "backend"):
        assert params[name].default == RerankOptions.default(name), name
    settings, sampling = RerankSettings(), Sampling()
    assert (settings.window, settings.step, settings.depth) == (20, 10, 100) == (
        RerankOptions.window, RerankOptions.step, RerankOptions.depth)
    from rearank_cli.prompts import get_family

    decoding = get_family(RerankOptions.prompt).decoding  # a decoding flag not given is the family's
    assert (sampling.max_tokens, sampling.temperature, sampling.top_p) == (
        decoding.max_tokens, decoding.temperature, decoding.top_p)
    assert sampling.seed == RerankOptions.seed and RerankOptions.max_tokens is None
    assert fixed_windows(40) == fixed_windows(40, RerankOptions.window, RerankOptions.step)


def test_settings_objects_check_types_and_choices():
    from rearank_cli.rerank.plan import RerankSettings

    with pytest.raises(InputError, match=r"invalid value for --prompt: 'x' is not one of rearank, rankgpt"):
        RerankSettings(prompt="x").check()
    with pytest.raises(InputError, match=r"invalid value for --window: '20' is not an integer"):
        RerankOptions(output="-", window="20")
    with pytest.raises(InputError, match="invalid value for --top-p"):
        RerankOptions(output="-", top_p=1.5)
    assert VllmOptions().backend_kwargs(RerankOptions(output="-", seed=-1))["seed"] is None


@pytest.mark.parametrize(("args", "flag", "allowed"), [
    (["rerank", RUN, "--backend", "tgi", "-o", "-"], "--backend", "vllm, hf, openai"),
    (["rerank", RUN, "--score-mode", "x", "-o", "-"], "--score-mode", "rank, first-stage"),
    (["eval", RUN, "--qrels", QRELS, "--format", "csv"], "--format", "table, json, trec"),
    (["doctor", "--format", "yaml"], "--format", "text, json"),
    (["train", "--report-to", "mlflow"], "--report-to", "none, wandb, tensorboard"),
])
def test_a_bad_choice_is_one_line_naming_flag_and_values(capsys, args, flag, allowed):
    assert run(args) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"rearank: error: Invalid value for '{flag}'") and allowed in line, line


@pytest.mark.parametrize("command", [["augment", RUN, "--qrels", QRELS, "-o", "-"], ["rerank", RUN, "-o", "-"]])
def test_an_unknown_prompt_family_is_one_line_naming_the_registered_ones(capsys, tmp_path, command):
    """`--prompt` takes the prompt-family registry's names (checked before any work)."""
    assert run([*command, "--prompt", "x"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("rearank: error: invalid value for --prompt: 'x' is not one of rearank, rankgpt"), line


def test_config_file_values_and_command_line_precedence(tmp_path, capsys):
    config = tmp_path / "eval.toml"
    config.write_text(f'runs = ["{RUN}"]\nqrels = "{QRELS}"\nmeasure = ["nDCG@10", "P@10"]\nformat = "json"\n'
                      "level = 2\n")
    out = tmp_path / "eval.json"
    assert run(["eval", "--config", str(config), "-o", str(out), "-l", "1"]) == 0
    doc = orjson.loads(out.read_bytes())
    assert doc["settings"]["level"] == 1 and doc["relevance_level"] == 1  # the flag beats the file
    assert doc["settings"]["fmt"] == "json" and [m["name"] for m in doc["measures"]] == ["nDCG@10", "P@10"]
    assert doc["inputs"]["config"]["sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()


@pytest.mark.parametrize(("text", "fragment"), [
    ("windows = 10\n", "unknown key 'windows'"),
    ('window = "10"\n', "key 'window': '10' is not an integer"),
    ("skip-missing = 1\n", "key 'skip-missing': 1 is not true or false"),
    ('backend = "tgi"\n', "key 'backend': 'tgi' is not one of vllm, hf, openai"),
    ("window = \n", "not valid TOML"),
])
def test_a_bad_config_is_exit_2_naming_file_and_key(tmp_path, capsys, text, fragment):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    out = tmp_path / "out.trec"
    assert run(["rerank", RUN, "--candidates", CANDIDATES, "--config", str(config), "-o", str(out)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"rearank: error: {config}: ") and fragment in line, line
    assert not out.exists()


def test_config_reads_dashes_floats_from_ints_and_lists():
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write('min-init-ndcg = 0\nsamples_per_query = 3\n')
    values = read_config(handle.name, [AugmentOptions]).values
    assert values == {"min_init_ndcg": 0.0, "samples_per_query": 3}
    Path(handle.name).unlink()


def test_toml_round_trip_keeps_every_value():
    values = {"run": "a b\t\"c\".trec", "window": 20, "top_p": 1.0, "lr": 1e-06, "resume": False,
              "measures": ["nDCG@10", "P.5,10"], "manifest": None, "trl": {"save_total_limit": 2}}
    back = tomllib.loads(to_toml(values))
    assert back == {k: v for k, v in values.items() if v is not None}


def test_augment_summary_records_settings_and_config(tmp_path):
    config = tmp_path / "augment.toml"
    config.write_text(f'qrels = "{QRELS}"\ncandidates = "{CANDIDATES}"\nsamples-per-query = 2\nseed = 7\n')
    out = tmp_path / "train.jsonl"
    assert run(["augment", RUN, "--config", str(config), "-o", str(out), "--seed", "8"]) == 0
    summary = json.loads((tmp_path / "train.jsonl.summary.json").read_text())
    assert summary["settings"]["samples_per_query"] == 2 and summary["settings"]["seed"] == 8
    assert summary["inputs"]["config"]["sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_manifest_settings_block_as_toml_reproduces_the_run(cli, samples, tiny_model, tmp_path):
    """rerank (tiny hf model, settings off their defaults) -> manifest `settings` -> TOML -> --config: the
    same run, byte for byte."""
    lines = (samples / "dl19-bm25-top100.trec").read_text().splitlines()
    qids = list(dict.fromkeys(line.split()[0] for line in lines))[:2]
    run_file = tmp_path / "run.trec"
    run_file.write_text("".join(line + "\n" for line in lines if line.split()[0] in qids))
    first = tmp_path / "first.trec"
    result = cli("rerank", run_file, "--candidates", samples / "dl19-bm25-top100.candidates.json.gz",
                 "--backend", "hf", "--model", tiny_model, "--depth", "12", "--window", "6", "--step", "3",
                 "--max-tokens", "8", "--batch-size", "2", "--temperature", "0.7", "--seed", "3",
                 "--score-mode", "first-stage", "--tag", "again", "-o", first)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    manifest = orjson.loads((tmp_path / "first.trec.manifest.json").read_bytes())
    settings = manifest["settings"]
    assert (settings["window"], settings["step"], settings["backend"], settings["batch_size"]) == (6, 3, "hf", 2)
    assert "inputs" in manifest and "config" not in manifest["inputs"]
    config = tmp_path / "settings.toml"
    made = subprocess.run([sys.executable, "-m", "rearank_cli.settings", tmp_path / "first.trec.manifest.json"],
                          capture_output=True, check=True)
    config.write_bytes(made.stdout)
    assert made.stdout.decode() == to_toml(settings)
    second = tmp_path / "second.trec"
    result = cli("rerank", "--config", config, "-o", second)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert second.read_bytes() == first.read_bytes()
    again = orjson.loads((tmp_path / "second.trec.manifest.json").read_bytes())
    assert again["settings"] == {**settings, "output": str(second)}
    assert again["inputs"]["config"]["sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
