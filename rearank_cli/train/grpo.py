"""GRPO training of a reasoning reranker with TRL (spec section 8): the settings of `rearank train`, the
batch plan, and every TRL/PEFT option that matters, set explicitly. No file is read or written here
(`jobs.train` does that); torch, transformers, TRL and PEFT are imported inside functions only.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from rearank_cli.errors import InputError, MissingDependency, require
from rearank_cli.formats.trec import Qrels
from rearank_cli.settings.train import TrainOptions
from rearank_cli.train.reward import WEIGHTS

#: every option of `rearank train` (declared in `settings.train`)
TrainSettings = TrainOptions


def prompt_lengths(rows: list[dict[str, Any]], tokenizer: Any, batch: int = 256) -> list[int]:
    """Token count of each row's prompt after the model's chat template (with the generation prompt, or
    continuing the assistant's begun answer when the prompt ends with one, as TRL renders it)."""
    from rearank_cli.backends.base import template_args

    lengths: list[int] = []
    for start in range(0, len(rows), batch):
        texts = [
            tokenizer.apply_chat_template(row["prompt"], tokenize=False, **template_args(row["prompt"]))
            for row in rows[start:start + batch]
        ]
        lengths.extend(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return lengths


def continued_as_text(rows: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """The rows as TRL must see them when a prompt begins the assistant's answer (a `<think>` to continue):
    TRL renders conversational prompts with a new generation prompt, which would close the begun answer, so
    every prompt is rendered here with the chat template (continuing the answer, as `rearank rerank` does) and
    handed over as text, with the begun answer in an `answer_prefix` column for the reward. Rows are returned
    unchanged when no prompt begins an answer. A BOS token the tokenizer adds by itself is not doubled."""
    from rearank_cli.backends.base import template_args
    from rearank_cli.train.reward import begun_answer

    if not any(begun_answer(row["prompt"]) for row in rows):
        return rows
    bos = str(getattr(tokenizer, "bos_token", None) or "")
    adds_bos = bool(bos) and bool(tokenizer("", add_special_tokens=True)["input_ids"])
    converted = []
    for row in rows:
        text = tokenizer.apply_chat_template(row["prompt"], tokenize=False, **template_args(row["prompt"]))
        if adds_bos and text.startswith(bos):
            text = text[len(bos):]
        converted.append({**row, "prompt": text, "answer_prefix": begun_answer(row["prompt"])})
    return converted


def drop_long_prompts(rows: list[dict[str, Any]], lengths: list[int], limit: int) -> tuple[list[dict[str, Any]], int]:
    """Rows whose prompt fits `limit` tokens, and how many were dropped (TRL no longer truncates prompts)."""
    kept = [row for row, n in zip(rows, lengths, strict=True) if n <= limit]
    return kept, len(rows) - len(kept)


def gradient_accumulation(prompts_per_step: int, num_generations: int, per_device: int, world: int) -> int:
    """Gradient accumulation steps so that one optimizer step sees `prompts_per_step` prompts x group.

    One optimizer step consumes per_device * world * GA completions, and TRL generates them in one
    generation batch (steps_per_generation = GA by default), i.e. (per_device * world * GA) / num_generations
    distinct prompts, each sampled num_generations times. Spec section 8: 128 prompts x 32 = 4096
    completions per step; on 8 GPUs with per-device batch 4 that is GA = 4096 / (4 * 8) = 128.
    """
    completions = prompts_per_step * num_generations
    if completions % (per_device * world):
        raise InputError(
            f"--prompts-per-step x --num-generations = {completions} completions per step is not divisible by "
            f"--per-device-batch-size x processes = {per_device} x {world}"
        )
    return completions // (per_device * world)


@dataclass(frozen=True)
class BatchPlan:
    """How many optimizer steps a run makes, worked out before any model is loaded (as TRL counts them:
    its sampler drops a last batch of fewer than `prompts_per_step` prompts, and reuses each batch of
    rollouts `num_iterations` times)."""

    samples: int
    prompts_per_step: int
    num_generations: int
    world_size: int
    per_device_batch_size: int
    gradient_accumulation_steps: int
    num_iterations: int
    steps_per_epoch: int
    epochs: float | None
    max_steps: int | None
    total_steps: int

    def describe(self) -> str:
        """One line for the log."""
        length = f"--max-steps {self.max_steps}" if self.max_steps is not None else f"{self.epochs:g} epoch(s)"
        return (f"batch plan: {self.samples} samples, {self.prompts_per_step} prompts x {self.num_generations} "
                f"completions per step ({self.per_device_batch_size} per device x {self.world_size} process(es) x "
                f"{self.gradient_accumulation_steps} accumulation), {self.steps_per_epoch} step(s) per epoch, "
                f"{length}: {self.total_steps} optimizer step(s)")


def batch_plan(s: TrainSettings, samples: int, world: int, dropped: int = 0) -> BatchPlan:
    """The batch plan of `samples` training samples on `world` processes; InputError (exit 2, naming the
    flag to change) when it cannot make one optimizer step."""
    grad_accum = gradient_accumulation(s.prompts_per_step, s.num_generations, s.per_device_batch_size, world)
    iterations = int(s.trl.get("num_iterations", 1))
    per_epoch = samples // s.prompts_per_step * iterations
    if per_epoch < 1:
        after = f" (after dropping {dropped} with prompts over --max-prompt-length {s.max_prompt_length})" \
            if dropped else ""
        raise InputError(f"{samples} training sample(s){after} make no optimizer step of --prompts-per-step "
                         f"{s.prompts_per_step}: lower --prompts-per-step to at most {samples}, or add samples",
                         s.train_file)
    if s.max_steps is not None:
        epochs, total = None, s.max_steps
    else:
        epochs = s.epochs if s.epochs is not None else 1.0
        total = math.ceil(epochs * per_epoch)
    return BatchPlan(samples, s.prompts_per_step, s.num_generations, world, s.per_device_batch_size, grad_accum,
                     iterations, per_epoch, epochs, s.max_steps, total)


def world_size() -> int:
    """Number of training processes (`accelerate launch` / torchrun set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def grpo_kwargs(s: TrainSettings, grad_accum: int, cuda: bool) -> dict[str, Any]:
    """GRPOConfig options, all set explicitly (TRL's defaults changed between releases; see spec section 8)."""
    kwargs: dict[str, Any] = {
        "output_dir": s.output,
        # Group and batch: see gradient_accumulation(); one generation batch per optimizer step.
        "num_generations": s.num_generations,
        "per_device_train_batch_size": s.per_device_batch_size,
        "gradient_accumulation_steps": grad_accum,
        "steps_per_generation": grad_accum,
        "num_iterations": 1,  # one policy update per batch of rollouts (VeRL ppo_epochs = 1)
        # Optimizer: constant lr 1e-6, no warmup; AdamW weight decay 0.01 and grad clip 1.0 are VeRL's actor
        # defaults (the authors trained with VeRL; the paper does not state them).
        "learning_rate": s.lr,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "weight_decay": 0.01,
        "max_grad_norm": 1.0,
        # Loss: PPO-style clip 0.2 on token-level ratios, symmetric; token-mean aggregation over the step's
        # completions ("dapo" in TRL = VeRL's token-mean); rewards normalized by the group's mean and std.
        "loss_type": "dapo",
        "epsilon": s.clip,
        "epsilon_high": s.clip,
        "importance_sampling_level": "token",
        "scale_rewards": "group",
        "multi_objective_aggregation": "sum_then_normalize",
        "mask_truncated_completions": False,
        "entropy_coef": 0.0,
        "disable_dropout": True,  # policy and reference see the same network (Qwen2.5 has no dropout anyway)
        # KL: beta * k3 in the loss, none in the reward. TRL computes per token
        # exp(ref - logp) - (ref - logp) - 1, the low-variance k3 estimator (VeRL's `low_var_kl`); TRL 1.16
        # would also multiply it by the importance ratio (use_bias_correction_kl), which VeRL does not.
        "beta": s.kl,
        "use_bias_correction_kl": False,
        # Rewards: three functions so the logs show rewards/rank_reward, format_reward, list_reward apart.
        "reward_weights": [WEIGHTS["rank"], WEIGHTS["format"], WEIGHTS["list"]],
        "remove_unused_columns": False,  # qid, docids, r_init, r_best reach the reward functions
        # Sampling.
        "temperature": s.temperature,
        "top_p": 1.0,
        "top_k": 0,
        "max_completion_length": s.max_completion_length,
        "shuffle_dataset": True,
        "seed": s.seed,
        "data_seed": s.seed,
        # Devices: bf16 autocast on CUDA, fp32 on the CPU. The weights stay fp32 (master copy) in both: with
        # bf16 weights an update of lr 1e-6 is far below bf16 resolution and most of it would be lost.
        # The final model is saved in bf16 when trained on CUDA (save_final).
        "use_cpu": not cuda,
        "bf16": cuda,
        "fp16": False,
        "model_init_kwargs": {"dtype": "float32"},
        "gradient_checkpointing": True,
        # Rollouts.
        "use_vllm": s.use_vllm,
        "vllm_mode": s.vllm_mode,
        "vllm_max_model_length": s.max_prompt_length + s.max_completion_length,
        # Logging and checkpoints.
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": s.save_steps,
        "report_to": [] if s.report_to == "none" else [s.report_to],
        "disable_tqdm": True,  # `rearank train` shows its own progress bar with the reward (jobs.train_watch)
    }
    if s.max_steps is not None:
        kwargs["max_steps"] = s.max_steps
    else:
        kwargs["num_train_epochs"] = s.epochs if s.epochs is not None else 1.0
    clash = sorted(set(s.trl) & {"output_dir", "num_generations", "per_device_train_batch_size",
                                 "gradient_accumulation_steps", "learning_rate", "beta", "epsilon",
                                 "temperature", "max_completion_length", "max_steps", "num_train_epochs",
                                 "save_steps", "use_vllm", "vllm_mode", "report_to", "seed",
                                 "steps_per_generation", "generation_batch_size", "reward_weights"})
    if clash:
        raise InputError(f"[trl] sets {', '.join(clash)}: use the `rearank train` flag instead")
    kwargs.update(s.trl)
    return kwargs


def reward_functions(qrels: Qrels) -> list[Any]:
    """The three TRL reward functions (rank, format, list), in the order of reward_weights."""
    import functools

    from rearank_cli.train.reward import format_reward, list_reward, rank_reward

    return [functools.partial(rank_reward, qrels=qrels), format_reward, list_reward]


def lora_config(r: int, last_layers: int = 0, num_layers: int = 0) -> Any:
    """PEFT LoRA on every linear layer (alpha = 2r) of every transformer layer, or of the last `last_layers`
    of the model's `num_layers` when `last_layers` > 0."""
    peft = require("peft", "train")
    targets = "all-linear"
    if 0 < last_layers < num_layers:
        # a regex (PEFT matches a str other than "all-linear" in full): the `*_proj` linears of Llama/Qwen layers
        layers = "|".join(str(i) for i in range(num_layers - last_layers, num_layers))
        targets = rf".*\.layers\.({layers})\..*_proj"
    return peft.LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=targets,
                           task_type="CAUSAL_LM")


def check_report_to(report_to: str) -> None:
    """Fail before training when the metrics logger of --report-to is not installed."""
    import importlib.util

    module = {"wandb": "wandb", "tensorboard": "tensorboard"}.get(report_to)
    if module and importlib.util.find_spec(module) is None:
        raise MissingDependency(f"--report-to {report_to} needs `{module}`: pip install {module}")
