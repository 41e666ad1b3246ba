"""`rearank rerank` and `rearank merge`: flags from `settings.rerank` and `settings.backends`; the jobs
(`rearank_cli.jobs.rerank`, `rearank_cli.jobs.merge`) are imported lazily so `rearank --help` stays fast."""

from __future__ import annotations

from rearank_cli.commands.options import command
from rearank_cli.errors import InputError
from rearank_cli.rerank.strategies.base import StrategyParams
from rearank_cli.rerank.strategies.registry import params_classes
from rearank_cli.settings.backends import BACKENDS, BackendOptions, HfOptions, OpenAIOptions, VllmOptions
from rearank_cli.settings.base import merged_dict
from rearank_cli.settings.files import ConfigFile
from rearank_cli.settings.rerank import MergeOptions, RerankOptions


@command(RerankOptions, VllmOptions, HfOptions, OpenAIOptions, *params_classes())
def rerank(options: RerankOptions, vllm: VllmOptions, hf: HfOptions, openai: OpenAIOptions,
           *strategy_params: StrategyParams, config: ConfigFile | None = None) -> None:
    """Rerank a TREC run with an LLM listwise reranker (REARANK), window by window: a sliding window or
    top-down partitioning (--strategy)."""
    from rearank_cli.jobs.rerank import RerankJob, check_complete, run_rerank
    from rearank_cli.rerank import RerankSettings

    settings = RerankSettings.from_options(options, strategy_params)
    if vllm.max_lora_rank is not None and not options.lora:
        raise InputError("--max-lora-rank needs --lora")
    backend: BackendOptions = next(g for g in (vllm, hf, openai) if isinstance(g, BACKENDS[options.backend]))
    job = RerankJob(
        run=options.run, output=options.output, model=options.model, backend=options.backend,
        backend_options=backend.backend_kwargs(options), settings=settings, topics=options.topics,
        corpus=options.corpus, candidates=options.candidates, trace=options.trace, manifest=options.manifest,
        resume=options.resume, overwrite=options.overwrite, shard=options.shard, tag=options.tag,
        score_mode=options.score_mode,
        skip_missing=options.skip_missing, lora=options.lora,
        recorded={**merged_dict(options, *strategy_params), **settings.decoding_dict(), **backend.as_dict()},
        config=config,
    )
    check_complete(run_rerank(job))


@command(MergeOptions, config=False)
def merge(options: MergeOptions, config: ConfigFile | None = None) -> None:
    """Join shard outputs of `rearank rerank --shard`, checking every query appears exactly once."""
    from rearank_cli.jobs.merge import merge_runs

    merge_runs(options.shards, options.output, expect=options.expect)
