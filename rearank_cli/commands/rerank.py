"""`rearank rerank` and `rearank merge`: flags from `settings.rerank` and `settings.backends`; the jobs
(`rearank_cli.jobs.rerank`, `rearank_cli.jobs.merge`) are imported lazily so `rearank --help` stays fast."""

from __future__ import annotations

from rearank_cli.commands.options import command
from rearank_cli.errors import InputError
from rearank_cli.rerank.strategies.base import StrategyParams
from rearank_cli.rerank.strategies.registry import params_classes
from rearank_cli.settings.backends import BACKENDS, BackendOptions, HfOptions, OpenAIOptions, VllmOptions
from rearank_cli.settings.files import ConfigFile
from rearank_cli.settings.rerank import MergeOptions, RerankOptions


@command(RerankOptions, VllmOptions, HfOptions, OpenAIOptions, *params_classes())
def rerank(options: RerankOptions, vllm: VllmOptions, hf: HfOptions, openai: OpenAIOptions,
           *strategy_params: StrategyParams, config: ConfigFile | None = None) -> None:
    """Rerank a TREC run with an LLM listwise reranker (REARANK), window by window: a sliding window or
    top-down partitioning (--strategy)."""
    from rearank_cli.jobs.context import JobContext
    from rearank_cli.jobs.dryrun import run as run_dry
    from rearank_cli.jobs.rerank import run

    if vllm.max_lora_rank is not None and not options.lora:  # given for the vllm backend while another runs
        raise InputError("--max-lora-rank needs --lora")
    backend: BackendOptions = next(g for g in (vllm, hf, openai) if isinstance(g, BACKENDS[options.backend]))
    context = JobContext(config=config, backend=backend, strategy_params=strategy_params)
    (run_dry if options.dry_run else run)(options, context)


@command(MergeOptions, config=False)
def merge(options: MergeOptions, config: ConfigFile | None = None) -> None:
    """Join shard outputs of `rearank rerank --shard`, checking every query appears exactly once."""
    from rearank_cli.jobs.context import JobContext
    from rearank_cli.jobs.merge import run

    run(options, JobContext(config=config))
