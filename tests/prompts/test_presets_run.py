"""Every preset runs end to end: `rearank rerank --prompt NAME` with the tiny Qwen2 model on the hf backend
reranks a DL19 query, records the family in the journal and the manifest, and the token-cut family takes
its tokenizer from `--model` and its budget from `--prompt-param`."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from tests.rerank.test_rerank_cli import assert_same_docs, small_run

PRESETS = ["reasonrank", "rank-k", "rankzephyr", "qwen3", "rankgpt-rankllm"]
#: the presets that shorten passages as rank_llm does until the prompt fits 4,096 tokens
CONTEXT_4096 = ("rank-k", "rankzephyr", "qwen3")


def rerank(cli, samples: Path, model: Path, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    run = small_run(samples, out.with_suffix(".run"), 1)
    result = cli("rerank", run, "--candidates", samples / "dl19-bm25-top100.candidates.json.gz", "--backend",
                 "hf", "--model", model, "--depth", "20", "--max-tokens", "8", "-o", out, *extra)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert_same_docs(out, run)
    return [orjson.loads(line) for line in Path(f"{out}.trace.jsonl").read_bytes().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_reranks_with_a_real_model(cli, samples, tiny_model, tmp_path, name):
    out = tmp_path / f"{name}.trec"
    header, *windows = rerank(cli, samples, tiny_model, out, "--prompt", name)
    assert len(windows) == 1 and windows[0]["prompt_tokens"] > 500
    assert json.loads(Path(f"{out}.manifest.json").read_text())["prompt"] == name
    assert name in json.dumps(header)
    if name in CONTEXT_4096:  # the tiny model's small vocabulary makes a DL19 window about 6,500 tokens
        assert windows[0]["prompt_tokens"] <= 4096


@pytest.mark.slow
def test_reasonrank_cuts_passages_with_the_models_tokenizer(cli, samples, tiny_model, tmp_path):
    _, default = rerank(cli, samples, tiny_model, tmp_path / "100.trec", "--prompt", "reasonrank")
    _, short = rerank(cli, samples, tiny_model, tmp_path / "20.trec", "--prompt", "reasonrank",
                      "--prompt-param", "passage_tokens=20")
    assert short["prompt_tokens"] < default["prompt_tokens"] - 20 * 40
