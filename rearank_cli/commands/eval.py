"""`rearank eval`: flags from `settings.commands.EvalOptions`; the job is `rearank_cli.jobs.eval` (imported
lazily)."""

from __future__ import annotations

from rearank_cli.commands.options import command
from rearank_cli.settings.commands import EvalOptions
from rearank_cli.settings.files import ConfigFile


@command(EvalOptions)
def evaluate(options: EvalOptions, config: ConfigFile | None = None) -> None:
    """Evaluate runs as `trec_eval -c` does (pytrec_eval) and compare them with a baseline."""
    from rearank_cli.jobs.eval import run_eval

    # -c: always; --jobs: one process
    run_eval(options.runs, options.qrels, options.measures, level=options.level, per_query=options.per_query,
             baseline=options.baseline, fmt=options.fmt, output=options.output, permutations=options.permutations,
             seed=options.seed, max_docs=options.max_docs, exclude=options.exclude,
             settings=options.as_dict(), config=config.path if config else None)
