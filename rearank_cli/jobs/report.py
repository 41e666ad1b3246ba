"""`rearank report` as a job: find and read the runs, their journals and manifests (a run merged from
shards: every shard's journal, from the merge manifest), the first-stage run, qrels and texts; evaluate
with `rearank eval`'s own code; hand the page (`report.build`) to the template; write one HTML file.

A run whose job was interrupted is rebuilt from its journal first (the finished windows on the
first-stage order) in a scratch folder, and evaluated as such; nothing is written next to the inputs.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

from rearank_cli import formats
from rearank_cli.errors import InputError, require
from rearank_cli.formats import Run, read_candidates, read_qrels, read_run, read_topics, write_run
from rearank_cli.jobs.context import JobContext
from rearank_cli.jobs.eval import evaluate_runs
from rearank_cli.report.build import Page, assemble_page
from rearank_cli.report.inputs import RunFiles, Texts, rebuild_run, window_chains
from rearank_cli.rerank.journal import read_journal
from rearank_cli.rerank.manifests import MergeManifest, RerankManifest, read_manifest
from rearank_cli.settings.commands import ReportOptions

log = logging.getLogger("rearank")


@dataclass
class ReportJob:
    """What `rearank report` was asked for. `traces`: one journal per run in the order of the runs, or,
    with a single run, every journal of it (the shards of a merged run)."""

    runs: list[str]
    qrels: str
    baseline: str | None = None
    traces: list[str] = field(default_factory=list)
    topics: str | None = None
    corpus: str | None = None
    candidates: str | None = None
    measures: list[str] | None = None
    level: int = ReportOptions.level
    top_k: int = ReportOptions.top_k
    output: str = ReportOptions.output
    permutations: int = ReportOptions.permutations
    seed: int = ReportOptions.seed

    def check(self) -> None:
        """Usage errors that need no file access."""
        if not self.runs:
            raise InputError("give at least one reranked RUN")
        if len(set(self.runs)) != len(self.runs):
            raise InputError("a RUN is given twice")
        if len(self.runs) > 1 and len(self.traces) > len(self.runs):
            raise InputError(f"{len(self.traces)} --trace for {len(self.runs)} runs: give at most one per run, "
                             "in the order of the runs (or one run with the journals of all its shards)")
        if self.candidates is not None and (self.topics is not None or self.corpus is not None):
            raise InputError("--candidates carries query and passage texts; do not combine it with --topics/--corpus")
        if self.top_k < 1:
            raise InputError("--top-k must be at least 1")
        if self.output == "-":
            raise InputError("the report is one HTML file: give -o FILE.html")

    def traces_of(self, number: int) -> list[str] | None:
        """The `--trace` journals given for run `number` (None: none given, look for them)."""
        if len(self.runs) == 1:
            return list(self.traces) or None
        return [self.traces[number]] if number < len(self.traces) else None


def run(options: ReportOptions, context: JobContext) -> int:
    """`rearank report`: build and write the page `options` ask for; returns the file's size in bytes.
    `context` carries nothing the report uses."""
    del context
    o = options
    return make_report(ReportJob(list(o.runs), o.qrels, o.baseline, list(o.traces or []), o.topics, o.corpus,
                                 o.candidates, list(o.measures) if o.measures else None, o.level, o.top_k, o.output,
                                 o.permutations, o.seed))


def make_report(job: ReportJob) -> int:
    """Build and write the report of `job`; returns the file's size in bytes."""
    require("jinja2", "report")
    require("matplotlib", "report")
    from rearank_cli.report.page import write_report

    page = build_report(job)
    size = write_report(page, job.output)
    log.info("%s: %d queries, %d of %d judged queries reranked, %d run(s), %.1f MB", job.output, len(page.queries),
             page.n_reranked, page.n_qrels, len(page.runs), size / 1e6)
    return size


def build_report(job: ReportJob) -> Page:
    """Read everything `job` names and return the page data (charts included)."""
    job.check()
    files = [locate(path, job.traces_of(number)) for number, path in enumerate(job.runs)]
    notes = [note for run in files for note in read_traces(run)]
    with tempfile.TemporaryDirectory(prefix="rearank-report-") as scratch:
        baseline = (job.baseline or manifest_input(files, "run") or journal_run(files)
                    or _candidates_baseline(files, scratch))
        first_stage = read_first_stage(baseline)
        notes += _prepare_runs(files, first_stage, scratch)
        report = evaluate_runs([run.eval_path for run in files], job.qrels, job.measures, level=job.level,
                               baseline=baseline, permutations=job.permutations, seed=job.seed)
        qrels = read_qrels(job.qrels)
        texts = _texts(job, files)
        return assemble_page(job, files, report, baseline, first_stage, qrels, texts, notes)


# ---------------------------------------------------------------- a run and its files


def locate(path: str, traces: list[str] | None) -> RunFiles:
    """The run at `path` with its manifest and journals: `traces` when given; for a run merged from shards
    (its manifest is a merge manifest) every shard's journal it records; else `RUN.trace.jsonl`, or the
    trace its manifest records, when present."""
    run = RunFiles(path)
    manifest_path = path + ".manifest.json"
    manifest = read_manifest(manifest_path) if os.path.isfile(manifest_path) else None
    found: list[str] = []
    if isinstance(manifest, MergeManifest):
        run.merge_path, run.merge = manifest_path, manifest
        found = _shard_files(run, manifest, manifest_path)
    elif isinstance(manifest, RerankManifest):
        run.manifest_path, run.manifest = manifest_path, manifest
        recorded = [manifest.trace] if manifest.trace else []
        found = [p for p in [path + ".trace.jsonl", *recorded] if os.path.isfile(p)][:1]
    elif os.path.isfile(path + ".trace.jsonl"):
        found = [path + ".trace.jsonl"]
    for trace in traces or []:
        if not os.path.isfile(trace):
            raise InputError("trace not found", trace)
    run.traces = list(traces) if traces else found
    if not os.path.isfile(path) and not run.traces:
        raise InputError("run not found (and no RUN.trace.jsonl journal beside it to rebuild it from)", path)
    return run


def _shard_files(run: RunFiles, merge: MergeManifest, merge_path: str) -> list[str]:
    """The journals of every shard a merge manifest records (found as recorded or relative to it); the
    first shard manifest found becomes the run's manifest (model, prompt, settings, inputs)."""
    traces = []
    for shard in merge.shards:
        manifest_path = _resolve(shard.manifest, merge_path)
        if run.manifest is None and manifest_path is not None:
            manifest = read_manifest(manifest_path)
            if isinstance(manifest, RerankManifest):
                run.manifest_path, run.manifest = manifest_path, manifest
        trace = _resolve(shard.trace, merge_path) or _resolve(shard.run + ".trace.jsonl", merge_path)
        if trace is None:
            log.warning("%s: no journal found for shard %s: its queries show no windows", merge_path, shard.run)
        else:
            traces.append(trace)
    return traces


def _resolve(path: str | None, manifest_path: str) -> str | None:
    """A path a manifest records, found as written (relative to the working directory) or relative to the
    manifest's folder; None when it is not there (or is stdin)."""
    if not path or path == "-":
        return None
    for candidate in (path, os.path.join(os.path.dirname(manifest_path), path)):
        if os.path.exists(candidate):
            return candidate
    return None


def read_traces(run: RunFiles) -> list[str]:
    """Read the run's journals into `run.header`/`run.records` (the journals of shards must record the same
    settings); returns the notes the page shows about them."""
    if not run.traces:
        return []
    journals = [read_journal(path) for path in run.traces]
    for journal in journals:
        if journal.torn is not None:
            log.warning("%s: ignoring a torn last line left by an interrupted run", journal.path)
        diff = journals[0].header.settings.differences(journal.header.settings)
        if diff:
            raise InputError(f"the journals of {run.path} were written with other settings than "
                             f"{journals[0].path} (" + "; ".join(diff) + ")", journal.path, 1)
    run.header = journals[0].header
    run.records = [record for journal in journals for record in journal.records]
    if len(journals) == 1:
        return []
    return [f"{run.path}: windows from the {len(journals)} journals of its shards ({run.trace})."]


def manifest_input(files: Sequence[RunFiles], name: str) -> str | None:
    """An input path (`run`, `topics`, `corpus`, `candidates`) as recorded by the first manifest that
    has it, found as written (relative to the working directory) or relative to the manifest."""
    for run in files:
        if run.manifest is None or run.manifest_path is None:
            continue
        path = run.manifest.provenance.input_path(name)
        found = _resolve(path, run.manifest_path)
        if found is not None:
            return found
        if path is not None:
            log.warning("%s: recorded %s %s not found", run.manifest_path, name, path)
    return None


def journal_run(files: Sequence[RunFiles]) -> str | None:
    """The first-stage run a journal header records (an interrupted job leaves no manifest)."""
    for run in files:
        path = run.header.run if run.header is not None else None
        if path and path != "-" and os.path.isfile(path):
            return path
    return None


def _candidates_baseline(files: Sequence[RunFiles], scratch: str) -> str | None:
    candidates = manifest_input(files, "candidates")
    return first_stage_from_candidates(candidates, scratch) if candidates else None


def _prepare_runs(files: Sequence[RunFiles], first_stage: Run | None, scratch: str) -> list[str]:
    """Replay each run's journals on the first-stage run; rebuild the runs whose job never wrote them."""
    notes = []
    for number, run in enumerate(files):
        if run.records is not None and run.header is not None:
            run.chains = window_chains(run.records, run.header.settings, first_stage)
        if os.path.isfile(run.path):
            run.eval_path = run.path
        else:
            if first_stage is None:
                raise InputError("run not found; rebuilding it from its journal needs the first-stage run "
                                 "(--baseline)", run.path)
            run.eval_path = os.path.join(scratch, f"rebuilt-{number}.trec")
            write_run(run.eval_path, rebuild_run(run.chains, first_stage), "rebuilt")
            run.rebuilt = True
            done = sum(len(c.windows) for c in run.chains.values())
            notes.append(f"{run.path} does not exist (an interrupted job): rebuilt from the {done} finished "
                         f"window(s) of {run.trace} on the first-stage run; queries without a finished window "
                         "keep their first-stage order.")
        run.order = {qid: [d for d, _ in hits] for qid, hits in read_run(run.eval_path).items()}
        run.mismatched = [qid for qid, chain in run.chains.items()
                          if chain.order is not None and chain.finished
                          and run.order.get(qid, [])[: len(chain.order)] != chain.order]
        if run.mismatched:
            notes.append(f"{run.path}: the journal's windows do not produce the run's order for "
                         f"{len(run.mismatched)} quer{'y' if len(run.mismatched) == 1 else 'ies'} "
                         f"({', '.join(run.mismatched[:5])}): another first-stage run or another trace?")
    return notes


# ---------------------------------------------------------------- texts


def _texts(job: ReportJob, files: Sequence[RunFiles]) -> Texts:
    wanted = {d for run in files for chain in run.chains.values() for r in chain.windows for d in r.docids}
    wanted |= {d for run in files for order in run.order.values() for d in order[: job.top_k]}
    if job.candidates or job.topics or job.corpus:
        return load_texts(job.topics, job.corpus, job.candidates, wanted)
    candidates = manifest_input(files, "candidates")
    if candidates:
        return load_texts(None, None, candidates, wanted)
    return load_texts(manifest_input(files, "topics"), manifest_input(files, "corpus"), None, wanted)


def load_texts(topics: str | None, corpus: str | None, candidates: str | None, wanted: set[str]) -> Texts:
    """Query and passage texts from `--candidates`, or `--topics` plus `--corpus` (JSONL or index), read by
    rerank's own loader; a report also takes either half alone (query texts only, or passages only)."""
    if candidates is not None or (topics is not None and corpus is not None):
        from rearank_cli.rerank.inputs import open_texts

        source = open_texts(None if candidates else topics, None if candidates else corpus, candidates)
        return Texts(source.topics, source.texts_for(wanted), candidates or f"{topics}, {corpus}")
    texts = Texts(source=topics or corpus)
    if topics is not None:
        texts.topics = read_topics(topics)
    if corpus is not None:
        from rearank_cli.texts import fetch_texts

        texts.passages = fetch_texts(corpus, wanted)
    return texts


def first_stage_from_candidates(candidates: str, folder: str) -> str:
    """Write the first-stage lists of a candidates file as a TREC run in `folder` (for `eval`)."""
    path = os.path.join(folder, "first-stage.trec")
    write_run(path, read_candidates(candidates).run, "first-stage")
    return path


def read_first_stage(path: str | None) -> Run | None:
    """The first-stage run in the order `rerank` read it (ties in file order; None without one)."""
    return formats.read_first_stage(path) if path is not None else None
