"""`rearank rerank` and `rearank merge`: flags from `settings.rerank` and `settings.backends`; the jobs
(`rearank_cli.jobs.rerank`, `rearank_cli.jobs.merge`) are imported lazily so `rearank --help` stays fast."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rearank_cli.commands.options import command
from rearank_cli.errors import InputError
from rearank_cli.settings.backends import BACKENDS, BackendOptions, HfOptions, OpenAIOptions, VllmOptions
from rearank_cli.settings.files import ConfigFile
from rearank_cli.settings.rerank import MergeOptions, RerankOptions

if TYPE_CHECKING:
    from rearank_cli.rerank import RerankSettings


@command(RerankOptions, VllmOptions, HfOptions, OpenAIOptions)
def rerank(options: RerankOptions, vllm: VllmOptions, hf: HfOptions, openai: OpenAIOptions,
           config: ConfigFile | None = None) -> None:
    """Rerank a TREC run with an LLM listwise reranker (REARANK), window by window: a sliding window or
    top-down partitioning (--strategy)."""
    from rearank_cli.jobs.rerank import RerankJob, check_complete, run_rerank
    from rearank_cli.rerank import RerankSettings

    settings = RerankSettings.from_options(options)
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
        recorded=recorded_settings(options, settings, backend), config=config,
    )
    if options.dry_run:
        from rearank_cli.jobs.dryrun import run_dry

        run_dry(job)
        return
    check_complete(run_rerank(job))


def recorded_settings(options: RerankOptions, settings: RerankSettings, backend: BackendOptions) -> dict[str, object]:
    """The settings a manifest records: every flag but `--dry-run` (a run that writes one was not dry), with
    the decoding settings the run uses."""
    values = {**options.as_dict(), **settings.decoding_dict(), **backend.as_dict()}
    values.pop("dry_run")
    return values


@command(MergeOptions, config=False)
def merge(options: MergeOptions, config: ConfigFile | None = None) -> None:
    """Join shard outputs of `rearank rerank --shard`, checking every query appears exactly once."""
    from rearank_cli.jobs.merge import merge_runs

    merge_runs(options.shards, options.output, expect=options.expect)
