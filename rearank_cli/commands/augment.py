"""`rearank augment`: REARANK RL training samples from any run + graded qrels (spec section 6); flags from
`settings.commands.AugmentOptions`."""

from __future__ import annotations

from dataclasses import fields

from rearank_cli.commands.options import command
from rearank_cli.settings.commands import AugmentOptions
from rearank_cli.settings.files import ConfigFile


@command(AugmentOptions)
def augment(options: AugmentOptions, config: ConfigFile | None = None) -> None:
    """Sample REARANK training windows (initial and ideal nDCG@10 each) from a run and graded qrels."""
    from rearank_cli.augment.sampling import Settings
    from rearank_cli.jobs.augment import augment as build

    settings = Settings(**{f.name: getattr(options, f.name) for f in fields(Settings) if hasattr(options, f.name)})
    summary = options.summary
    if summary is None and options.output != "-":
        summary = options.output + ".summary.json"
    build(options.run, options.qrels, options.output, settings, topics_path=options.topics,
          corpus_path=options.corpus, candidates_path=options.candidates, fmt=options.fmt, summary_path=summary,
          recorded=options.as_dict(), config=config.path if config else None)
