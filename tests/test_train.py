"""`rearank train`: settings, batch math, input checks, and a real GRPO run on the tiny model (CPU)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import orjson
import pytest

from rearank_cli.errors import InputError
from rearank_cli.jobs.train import merge_settings, read_config, read_samples
from rearank_cli.manifests import TrainManifest
from rearank_cli.metrics import ndcg
from rearank_cli.prompts import build_messages
from rearank_cli.train.grpo import TrainSettings, drop_long_prompts, gradient_accumulation, grpo_kwargs

QRELS = {"q1": {"a": 2, "b": 0, "c": 1, "z": 3}, "q2": {"x": 1}}


def make_row(qid: str, docids: list[str], qrels=QRELS) -> dict:
    """A training row as `rearank augment` writes it, built from the shared prompt builder and metrics."""
    judged = qrels[qid]
    labels = [judged.get(d, 0) for d in docids]
    return {
        "qid": qid, "query": f"query {qid}", "docids": docids, "passages": [f"text of {d}" for d in docids],
        "first_stage_ranks": list(range(1, len(docids) + 1)), "first_stage_scores": [1.0] * len(docids),
        "labels": labels, "r_init": ndcg(labels, judged.values()),
        "r_best": ndcg(sorted(labels, reverse=True), judged.values()), "sample": 0,
        "prompt": build_messages("rearank", f"query {qid}", [f"text of {d}" for d in docids]),
    }


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def write_qrels(path: Path, qrels=QRELS) -> Path:
    path.write_text("".join(f"{q} 0 {d} {r}\n" for q, judged in qrels.items() for d, r in judged.items()))
    return path


# --- pure parts -------------------------------------------------------------------------------------------


def test_batch_math():
    # Spec section 8: 128 prompts x 32 completions per step on 8 GPUs, 4 completions per pass.
    assert gradient_accumulation(128, 32, 4, 8) == 128
    assert gradient_accumulation(2, 4, 4, 1) == 2
    assert gradient_accumulation(2, 4, 8, 1) == 1
    with pytest.raises(InputError, match="not divisible"):
        gradient_accumulation(3, 4, 8, 1)


def test_trl_options_are_explicit():
    s = TrainSettings(train_file="t", model="m", qrels="q", output="o")
    kwargs = grpo_kwargs(s, grad_accum=128, cuda=True)
    assert kwargs["beta"] == 0.01 and kwargs["use_bias_correction_kl"] is False
    assert (kwargs["epsilon"], kwargs["epsilon_high"]) == (0.2, 0.2)
    assert (kwargs["learning_rate"], kwargs["lr_scheduler_type"]) == (1e-6, "constant")
    assert (kwargs["num_generations"], kwargs["temperature"], kwargs["max_completion_length"]) == (32, 1.0, 2048)
    assert kwargs["loss_type"] == "dapo" and kwargs["reward_weights"] == [0.8, 0.1, 0.1]
    assert kwargs["per_device_train_batch_size"] * kwargs["gradient_accumulation_steps"] == 4 * 128
    assert kwargs["bf16"] and not kwargs["use_cpu"]
    assert kwargs["num_train_epochs"] == 1.0 and "max_steps" not in kwargs
    cpu = grpo_kwargs(TrainSettings(output="o", max_steps=3, trl={"save_total_limit": 2}), 1, cuda=False)
    assert cpu["use_cpu"] and not cpu["bf16"] and cpu["max_steps"] == 3 and cpu["save_total_limit"] == 2
    with pytest.raises(InputError, match="beta"):
        grpo_kwargs(TrainSettings(output="o", trl={"beta": 0.0}), 1, cuda=False)


def test_trl_accepts_the_options():
    from trl import GRPOConfig

    s = TrainSettings(output="/tmp/unused", num_generations=4, prompts_per_step=2, max_steps=1)
    config = GRPOConfig(**grpo_kwargs(s, gradient_accumulation(2, 4, 4, 1), cuda=False))
    assert config.generation_batch_size == 8 and config.beta == 0.01 and config.loss_type == "dapo"


def test_config_file_and_flags(tmp_path):
    toml = tmp_path / "train.toml"
    toml.write_text('model = "base"\nnum-generations = 8\nlr = 2e-6\n[trl]\nsave_total_limit = 2\n')
    values = read_config(str(toml))
    s = merge_settings(values, {"num_generations": 4}, {"num_generations": 32, "lr": 1e-6, "kl": 0.01})
    assert (s.model, s.num_generations, s.lr, s.kl, s.trl) == ("base", 4, 2e-6, 0.01, {"save_total_limit": 2})
    s = merge_settings({"max_steps": 5}, {"epochs": 2.0}, {"max_steps": None, "epochs": None})
    assert (s.max_steps, s.epochs) == (None, 2.0)
    toml.write_text("num_generation = 8\n")
    with pytest.raises(InputError, match="unknown key"):
        read_config(str(toml))
    toml.write_text("num-generations = \n")
    with pytest.raises(InputError, match="TOML"):
        read_config(str(toml))


def test_shipped_configs_are_valid():
    import dataclasses

    import yaml
    from trl import GRPOConfig

    root = Path(__file__).resolve().parent.parent
    values = read_config(str(root / "configs" / "train.toml"))
    s = merge_settings(values, {"train_file": "t.jsonl", "qrels": "q", "output": "o"}, {})
    s.check()
    assert (s.num_generations, s.prompts_per_step, s.lr, s.kl, s.clip) == (32, 128, 1e-6, 0.01, 0.2)
    assert set(s.trl) <= {f.name for f in dataclasses.fields(GRPOConfig)}
    kinds = {name: yaml.safe_load((root / "configs" / "accelerate" / name).read_text())["distributed_type"]
             for name in ("zero3.yaml", "fsdp2.yaml")}
    assert kinds == {"zero3.yaml": "DEEPSPEED", "fsdp2.yaml": "FSDP"}


def test_read_samples_checks_rows_against_qrels(tmp_path):
    rows = [make_row("q1", ["b", "a", "c", "d"]), make_row("q2", ["y", "x"])]
    good = write_rows(tmp_path / "good.jsonl", rows)
    read = read_samples(str(good), QRELS)
    assert [r["qid"] for r in read] == ["q1", "q2"] and "passages" not in read[0]
    # A query missing from the qrels is an error naming the line, never a silent 0.
    with pytest.raises(InputError, match=r"bad\.jsonl:2: query 'q2' has no judgements"):
        read_samples(str(write_rows(tmp_path / "bad.jsonl", rows)), {"q1": QRELS["q1"]})
    # Another qrels file (different labels or IDCG) is caught by the stored labels and r_init/r_best.
    other = {"q1": {**QRELS["q1"], "z": 1}, "q2": QRELS["q2"]}
    with pytest.raises(InputError, match=r"good\.jsonl:1: .*r_init"):
        read_samples(str(good), other)
    with pytest.raises(InputError, match=r"x\.jsonl:1: malformed sample"):
        read_samples(str(write_rows(tmp_path / "x.jsonl", [{**rows[0], "r_init": "high"}])), QRELS)
    with pytest.raises(InputError, match="missing field"):
        read_samples(str(write_rows(tmp_path / "x.jsonl", [{"qid": "q1"}])), QRELS)


def test_drop_long_prompts():
    rows = [{"n": i} for i in range(4)]
    kept, dropped = drop_long_prompts(rows, [10, 3072, 3073, 5000], 3072)
    assert kept == rows[:2] and dropped == 2


def test_cli_errors_exit_2(cli, tmp_path):
    rows = write_rows(tmp_path / "t.jsonl", [make_row("q2", ["y", "x"])])
    qrels = write_qrels(tmp_path / "qrels.txt", {"q1": QRELS["q1"]})
    result = cli("train", rows, "--model", "m", "-o", tmp_path / "out")
    assert result.returncode == 2 and b"--qrels" in result.stderr
    result = cli("train", rows, "--model", "m", "--qrels", qrels, "-o", tmp_path / "out")
    assert result.returncode == 2 and b"t.jsonl:1: query 'q2' has no judgements" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    result = cli("train", rows, "--model", "m", "--qrels", qrels, "-o", tmp_path / "out", "--max-steps", "1",
                 "--epochs", "1")
    assert result.returncode == 2 and b"not both" in result.stderr


# --- a real GRPO run on the tiny model --------------------------------------------------------------------


@pytest.fixture(scope="module")
def dl19_samples(cli, samples, tmp_path_factory) -> Path:
    """`rearank augment` on the DL19 BM25 candidates: one 5-passage sample per query (short prompts)."""
    out = tmp_path_factory.mktemp("augment") / "train.jsonl"
    result = cli("augment", samples / "dl19-bm25-top100.trec", "--qrels", samples / "dl19-qrels.txt",
                 "--candidates", samples / "dl19-bm25-top100.candidates.json.gz",
                 "--samples-per-query", "1", "--window", "5", "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    return out


@pytest.fixture(scope="module")
def trained(cli, samples, tiny_model, dl19_samples, tmp_path_factory) -> dict:
    """Two GRPO steps (2 prompts x 4 completions each) on the CPU, options partly from a train.toml."""
    folder = tmp_path_factory.mktemp("train")
    config = folder / "train.toml"
    config.write_text(
        f'model = "{tiny_model}"\nqrels = "{samples / "dl19-qrels.txt"}"\nnum-generations = 8\n'
        'max-completion-length = 12\nmax-prompt-length = 32768\nlr = 1e-3\n[trl]\nsave_total_limit = 1\n'
    )
    out = folder / "out"
    result = cli("train", dl19_samples, "--config", config, "-o", out, "--max-steps", "2",
                 "--num-generations", "4", "--prompts-per-step", "2", "--per-device-batch-size", "4",
                 "--save-steps", "1")
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return {"out": out, "stdout": result.stdout, "stderr": result.stderr.decode()}


@pytest.mark.slow
def test_train_runs_and_logs_each_reward(trained):
    assert trained["stdout"] == b""  # stdout carries data only
    log = [json.loads(line) for line in (trained["out"] / "train_log.jsonl").read_text().splitlines()]
    steps = [entry for entry in log if "reward" in entry]
    assert [entry["step"] for entry in steps] == [1, 2]
    for entry in steps:
        for name in ("rank_reward", "format_reward", "list_reward"):
            assert math.isfinite(entry[f"rewards/{name}/mean"])
        assert "kl" in entry and entry["learning_rate"] == 1e-3
    assert "step 2: reward=" in trained["stderr"] and "rank_reward=" in trained["stderr"]
    manifest = json.loads((trained["out"] / "rearank_train.json").read_text())
    assert manifest["settings"]["num_generations"] == 4  # the flag beat the config file's 8
    assert manifest["settings"]["max_completion_length"] == 12  # from the config file
    assert manifest["batch"]["gradient_accumulation_steps"] == 2
    assert manifest["samples"]["dropped_long_prompt"] == 0 and manifest["samples"]["used"] > 2
    assert manifest["result"]["global_step"] == 2 and "trl" in manifest["versions"]
    assert manifest["plan"]["total_steps"] == manifest["result"]["trainer_max_steps"] == 2
    assert manifest["result"]["complete"] is True and "batch plan: " in trained["stderr"]
    [(prompt, count)] = manifest["prompts"].items()  # one prompt, recorded by augment
    assert prompt.startswith("rearank ") and count == manifest["samples"]["read"]
    assert [p.name for p in trained["out"].glob("checkpoint-*")] == ["checkpoint-2"]  # save_total_limit = 1
    raw = (trained["out"] / "rearank_train.json").read_bytes()
    assert TrainManifest.from_json(manifest).dump() == raw  # the file is its typed record's bytes


@pytest.mark.slow
def test_train_changes_weights_and_saves_a_loadable_model(trained, tiny_model):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    before = load_file(tiny_model / "model.safetensors")
    after = load_file(trained["out"] / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    tokenizer = AutoTokenizer.from_pretrained(trained["out"])
    assert tokenizer.chat_template
    model = AutoModelForCausalLM.from_pretrained(trained["out"])
    messages = build_messages("rearank", "what is a protein", ["Proteins are biomolecules.", "Rocks."])
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 4 or output[0, -1] == tokenizer.eos_token_id


def in_process(*args) -> int:
    """The real CLI in this process (torch is already imported here: saves a subprocess start per run)."""
    from rearank_cli.cli import run

    return run([str(a) for a in args])


def test_gpu_only_options_fail_early_on_the_cpu(samples, tiny_model, dl19_samples, tmp_path, capsys):
    import importlib.util

    import torch

    if torch.cuda.is_available():
        pytest.skip("a CPU-only check")
    args = ["train", dl19_samples, "--model", tiny_model, "--qrels", samples / "dl19-qrels.txt", "-o", tmp_path,
            "--prompts-per-step", "2", "--num-generations", "4"]  # a plan that makes steps from the 23 samples
    assert in_process(*args, "--use-vllm") == 2
    assert "--use-vllm needs a CUDA GPU" in capsys.readouterr().err
    if importlib.util.find_spec("tensorboard") is None:
        assert in_process(*args, "--report-to", "tensorboard") == 1
        assert "pip install tensorboard" in capsys.readouterr().err


@pytest.mark.slow
def test_prompts_over_the_limit_are_dropped(samples, tiny_model, dl19_samples, tmp_path, capsys, caplog):
    code = in_process("train", dl19_samples, "--model", tiny_model, "--qrels", samples / "dl19-qrels.txt",
                      "-o", tmp_path / "out", "--max-prompt-length", "100", "--max-steps", "1",
                      "--prompts-per-step", "2", "--num-generations", "4")
    assert code == 2
    assert "every prompt is longer than --max-prompt-length 100" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_resume_from_the_newest_checkpoint(samples, tiny_model, dl19_samples, trained, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(trained["out"], out)
    code = in_process("train", dl19_samples, "--model", tiny_model, "--qrels", samples / "dl19-qrels.txt",
                      "-o", out, "--max-steps", "3", "--num-generations", "4", "--prompts-per-step", "2",
                      "--max-completion-length", "12", "--max-prompt-length", "32768", "--resume-from", "auto")
    assert code == 0
    manifest = json.loads((out / "rearank_train.json").read_text())
    assert manifest["result"]["resumed_from"].endswith("checkpoint-2")
    assert manifest["result"]["global_step"] == 3
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [s for s in steps if s] == sorted(s for s in steps if s) and 3 in steps  # log appended, not reset


@pytest.mark.slow
def test_lora_is_merged_into_the_saved_model(samples, tiny_model, dl19_samples, tmp_path):
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "out"
    code = in_process("train", dl19_samples, "--model", tiny_model, "--qrels", samples / "dl19-qrels.txt",
                      "-o", out, "--max-steps", "1", "--num-generations", "4", "--prompts-per-step", "2", "--lora",
                      "--lora-r", "4", "--lr", "1e-2", "--max-completion-length", "12", "--max-prompt-length", "32768")
    assert code == 0
    before = load_file(tiny_model / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert before.keys() == after.keys()  # a plain model, no adapter weights
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert (out / "adapter" / "adapter_config.json").exists()
    assert (out / "tokenizer_config.json").exists()


@pytest.mark.slow
def test_rerank_loads_the_trained_model(samples, trained, tmp_path):
    """`rearank rerank --model OUT_DIR --backend hf` on one DL19 query (5 candidates, one window)."""
    lines = (samples / "dl19-bm25-top100.trec").read_text().splitlines()[:5]
    run = tmp_path / "one.trec"
    run.write_text("\n".join(lines) + "\n")
    out = tmp_path / "rr.trec"
    code = in_process("rerank", run, "--model", trained["out"], "--backend", "hf", "--candidates",
                      samples / "dl19-bm25-top100.candidates.json.gz", "--window", "5", "--step", "5",
                      "--depth", "5", "--max-tokens", "4", "-o", out)
    assert code == 0
    reranked = [line.split() for line in out.read_text().splitlines()]
    assert sorted(parts[2] for parts in reranked) == sorted(line.split()[2] for line in lines)
    trace = [json.loads(line) for line in out.with_name("rr.trec.trace.jsonl").read_text().splitlines()]
    assert any(record.get("completion_tokens") for record in trace)  # the trained model generated


def test_final_model_is_rewritten_in_bf16_after_gpu_training(tiny_model, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from rearank_cli.jobs.train import rewrite_dtype

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    rewrite_dtype(folder, "bfloat16")
    assert {t.dtype for t in load_file(folder / "model.safetensors").values()} == {torch.bfloat16}
    assert AutoModelForCausalLM.from_pretrained(folder).dtype == torch.bfloat16
    before = (folder / "model.safetensors").stat().st_mtime_ns
    rewrite_dtype(folder, "bfloat16")  # already bf16: untouched
    assert (folder / "model.safetensors").stat().st_mtime_ns == before


# --- the batch plan: checked before any model is loaded, and held to at the end ----------------------------


def test_batch_plan_counts_steps_as_trl_does():
    from rearank_cli.train.grpo import batch_plan

    s = TrainSettings(train_file="t.jsonl", num_generations=4, prompts_per_step=2, per_device_batch_size=4)
    plan = batch_plan(s, 5, 1)  # TRL's sampler drops the last, incomplete batch of prompts
    assert (plan.steps_per_epoch, plan.total_steps, plan.gradient_accumulation_steps) == (2, 2, 2)
    assert batch_plan(dataclasses.replace(s, epochs=1.5), 5, 1).total_steps == 3
    assert batch_plan(dataclasses.replace(s, max_steps=7), 5, 1).total_steps == 7
    assert batch_plan(dataclasses.replace(s, trl={"num_iterations": 2}), 5, 1).total_steps == 4
    assert "2 prompts x 4 completions per step" in plan.describe() and ": 2 optimizer step(s)" in plan.describe()
    with pytest.raises(InputError, match=r"t\.jsonl: 1 training sample\(s\) make no optimizer step of "
                                         r"--prompts-per-step 2: lower --prompts-per-step to at most 1"):
        batch_plan(s, 1, 1)


def test_too_few_samples_for_one_step_is_exit_2_before_loading_any_model(cli, tmp_path):
    rows = write_rows(tmp_path / "t.jsonl", [make_row("q1", ["b", "a", "c", "d"])] * 9)
    qrels = write_qrels(tmp_path / "qrels.txt")
    out = tmp_path / "out"
    # the default 128 prompts per step; the model does not exist: nothing may try to load it
    result = cli("train", rows, "--model", tmp_path / "no-such-model", "--qrels", qrels, "-o", out)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        f"rearank: error: {rows}: 9 training sample(s) make no optimizer step of --prompts-per-step 128: "
        "lower --prompts-per-step to at most 9, or add samples"]
    assert not out.exists()


def test_too_few_samples_after_dropping_long_prompts_is_exit_2(tiny_model, tmp_path, capsys):
    from transformers import AutoTokenizer

    from rearank_cli.train.grpo import prompt_lengths

    rows = [make_row("q1", ["b", "a", "c", "d"]), make_row("q2", ["y", "x"]), make_row("q1", ["a", "b"])]
    rows[0]["prompt"] = build_messages("rearank", "query q1", ["a long text " * 50] * 4)
    lengths = prompt_lengths(rows, AutoTokenizer.from_pretrained(tiny_model))
    path = write_rows(tmp_path / "t.jsonl", rows)
    out = tmp_path / "out"
    code = in_process("train", path, "--model", tiny_model, "--qrels", write_qrels(tmp_path / "q.txt"), "-o", out,
                      "--prompts-per-step", "3", "--num-generations", "4", "--max-prompt-length", max(lengths) - 1)
    assert code == 2
    assert (f"2 training sample(s) (after dropping 1 with prompts over --max-prompt-length {max(lengths) - 1}) make "
            "no optimizer step of --prompts-per-step 3") in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_a_run_that_stops_before_the_planned_steps_exits_3(tiny_model, tmp_path, monkeypatch, capsys):
    """Training that ends early (here a callback stops it after step 1 of 3) is never exit 0; the plan,
    printed at the start, is recorded and agrees with the step count of TRL's own trainer."""
    import rearank_cli.jobs.train as core

    logger = core.metrics_callback

    def stop_after_one_step(output, total_steps):
        class StopAfterOne(type(logger(output, total_steps))):
            def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001 - transformers' signature
                control.should_training_stop = True

        return StopAfterOne()

    monkeypatch.setattr(core, "metrics_callback", stop_after_one_step)
    rows = [make_row("q1", ["b", "a", "c", "d"]), make_row("q2", ["y", "x"]), make_row("q1", ["a", "z"]),
            make_row("q1", ["c", "b"]), make_row("q2", ["x", "y"])]
    out = tmp_path / "out"
    code = in_process("train", write_rows(tmp_path / "t.jsonl", rows), "--model", tiny_model, "--qrels",
                      write_qrels(tmp_path / "q.txt"), "-o", out, "--epochs", "1.5", "--num-generations", "4",
                      "--prompts-per-step", "2", "--max-completion-length", "8", "--max-prompt-length", "32768")
    err = capsys.readouterr().err
    assert code == 3, err[-3000:]
    assert "batch plan: 5 samples, 2 prompts x 4 completions per step" in err and "3 optimizer step(s)" in err
    assert f"rearank: error: training stopped after 1 of 3 planned optimizer steps; the model in {out}" in err
    manifest = json.loads((out / "rearank_train.json").read_text())
    assert manifest["plan"]["total_steps"] == manifest["result"]["trainer_max_steps"] == 3
    assert manifest["plan"]["steps_per_epoch"] == 2 and manifest["plan"]["samples"] == 5
    assert manifest["result"]["global_step"] == 1 and manifest["result"]["complete"] is False
    assert (out / "model.safetensors").exists()
