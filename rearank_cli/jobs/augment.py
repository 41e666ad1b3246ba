"""`rearank augment`: a run, graded qrels and texts -> REARANK training samples, written atomically.

The samples are drawn by `sampling` (its docstring lists every field of a row); `--format jsonl` writes
one JSON object per row, `--format parquet` the VeRL layout (`formats.verl`). The counts go to stderr and
to the summary JSON (provenance, settings, prompt hash, counts). SIGINT or SIGTERM stops it cleanly, leaving
no partial output (`jobs.signals`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

from rearank_cli import __version__
from rearank_cli.augment.sampling import Inputs, Settings, Summary, build_rows, summary_lines
from rearank_cli.errors import InputError, require
from rearank_cli.formats import atomic_output, read_qrels
from rearank_cli.formats.jsonl import write_jsonl
from rearank_cli.formats.verl import write_parquet
from rearank_cli.jobs.context import JobContext
from rearank_cli.jobs.signals import stop_on_signals
from rearank_cli.manifests import AugmentSummary
from rearank_cli.prompts import get_family, prompt_hash
from rearank_cli.provenance import Provenance
from rearank_cli.settings.commands import AUGMENT_FORMATS, AugmentOptions
from rearank_cli.settings.commands import AugmentOptions as _O

log = logging.getLogger("rearank")

FORMATS = AUGMENT_FORMATS


def load_inputs(
    run_path: str,
    qrels_path: str,
    topics_path: str | None = None,
    corpus_path: str | None = None,
    candidates_path: str | None = None,
    depth: int = _O.depth,
) -> Inputs:
    """Read the qrels, and spool the run and the texts from `--topics` + `--corpus` or from `--candidates`
    (read back one query at a time: memory does not grow with the run)."""
    from rearank_cli.rerank.inputs import SpooledRun, SpooledTexts, check_text_source, spool_inputs

    check_text_source(topics_path, corpus_path, candidates_path)
    qrels = read_qrels(qrels_path)
    spooled = spool_inputs(run_path, topics_path, corpus_path, candidates_path, depth=depth, every_query=True,
                           needs_text=qrels.__contains__)
    source = candidates_path if candidates_path is not None else corpus_path
    assert source is not None
    return Inputs(SpooledRun(spooled), qrels, spooled.topics, SpooledTexts(spooled), source)


def summary_record(summary: Summary, settings: Settings, paths: Mapping[str, str | None], fmt: str,
                   recorded: Mapping[str, Any] | None = None) -> AugmentSummary:
    """The machine-readable summary: inputs, settings (`recorded`, else `settings`), prompt, versions and
    counts."""
    return AugmentSummary(
        Provenance.now("augment.summary", {k: v for k, v in paths.items() if k != "output"}),
        kind="augment",
        version=__version__,
        python=sys.version.split()[0],
        paths=dict(paths),
        settings=dict(recorded) if recorded is not None else asdict(settings),
        format=fmt,
        prompt_hash=prompt_hash(settings.prompt),
        counts=summary.to_json(),
    )


def run(options: AugmentOptions, context: JobContext) -> Summary:
    """`rearank augment`: sample the windows `options` ask for, write them and (unless the output is `-` and
    no `--summary` is given) the JSON summary beside them; returns the counts."""
    settings = Settings(**{f.name: getattr(options, f.name) for f in fields(Settings) if hasattr(options, f.name)})
    summary = options.summary
    if summary is None and options.output != "-":
        summary = options.output + ".summary.json"
    return augment(options.run, options.qrels, options.output, settings, topics_path=options.topics,
                   corpus_path=options.corpus, candidates_path=options.candidates, fmt=options.fmt,
                   summary_path=summary, recorded=options.as_dict(), config=context.config_path)


def check_verl_prompt(prompt: str, fmt: str) -> None:
    """InputError for VeRL's parquet with a family that begins the assistant's answer: VeRL renders every
    prompt with a new generation prompt, so the begun answer would not be continued."""
    if fmt != "parquet":
        return
    if get_family(prompt).request("query", ["passage"]).continues:
        raise InputError(f"--format parquet: prompt {prompt!r} begins the assistant's answer, which VeRL's "
                         "loader does not continue (use --format jsonl with rearank train)")


def augment(
    run_path: str,
    qrels_path: str,
    output: str,
    settings: Settings,
    *,
    topics_path: str | None = None,
    corpus_path: str | None = None,
    candidates_path: str | None = None,
    fmt: str = _O.fmt,
    summary_path: str | None = None,
    recorded: Mapping[str, Any] | None = None,
    config: str | None = None,
) -> Summary:
    """Build the samples and write them to `output` (`-` = stdout) atomically; returns the counts.

    The summary is logged to stderr and, when `summary_path` is given, written there as JSON (its
    `settings`: `recorded`, the command's resolved settings, else `settings`; `config`: the --config file).
    """
    from tqdm import tqdm

    settings.validate()
    _O.check_value("fmt", fmt)
    check_verl_prompt(settings.prompt, fmt)
    inputs = load_inputs(run_path, qrels_path, topics_path, corpus_path, candidates_path, settings.depth)
    summary = Summary()
    writer = write_parquet if fmt == "parquet" else write_jsonl
    if fmt == "parquet":
        require("pyarrow.parquet", "train")
    bar = tqdm(total=len(inputs.run), desc="augment", unit="query", file=sys.stderr, disable=None)
    try:
        with stop_on_signals("no output written"), atomic_output(output, "wb") as out:
            writer(build_rows(inputs, settings, summary, bar.update), out)
    finally:
        bar.close()
    for line in summary_lines(summary, settings):
        log.info("augment: %s", line)
    if summary_path is not None:
        paths = {"run": run_path, "qrels": qrels_path, "topics": topics_path, "corpus": corpus_path,
                 "candidates": candidates_path, "output": output, "config": config}
        record = summary_record(summary, settings, paths, fmt, recorded)
        with atomic_output(summary_path, "wb") as out:
            out.write(record.dump())
    return summary
