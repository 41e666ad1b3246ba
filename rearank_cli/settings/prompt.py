"""The settings of `rearank prompt`: list the prompt families, show one, or print one window's messages."""

from __future__ import annotations

from dataclasses import dataclass

from rearank_cli.errors import InputError
from rearank_cli.settings.base import Settings, setting
from rearank_cli.settings.rerank import WINDOW_SCHEDULES, RerankOptions

#: what `rearank prompt` does
PROMPT_ACTIONS = ("list", "show", "render")
PROMPT_FORMATS = ("text", "json")


@dataclass(frozen=True, kw_only=True)
class PromptOptions(Settings):
    """`rearank prompt list | show NAME|FILE | render RUN`."""

    command = "prompt"

    action: str = setting("list", metavar="ACTION", choices=PROMPT_ACTIONS,
                          help="What to print: list (the families), show (one family: NAME or FILE.yaml), or "
                          "render (the messages of one window of RUN).")
    target: str | None = setting(None, metavar="NAME|FILE|RUN", show_default=False,
                                 help="With show, the family's name or a template file; with render, the "
                                 "first-stage TREC run (`-` = stdin; optional with --candidates).")
    prompt: str = setting(RerankOptions.prompt, "--prompt",
                          help="The prompt family of render (a name of `rearank prompt list`, or a template "
                          "FILE.yaml).")
    prompt_params: list[str] = setting(
        [], "--prompt-param", metavar="NAME=VALUE", show_default=False,
        help="A parameter of the prompt family (repeatable), as `rearank rerank` takes it.")
    model: str = setting(RerankOptions.model, "--model",
                         help="The model whose tokenizer cuts passages, for a family that cuts by tokens.")
    topics: str | None = setting(None, "--topics", help="The query texts (TSV or queries.jsonl).")
    corpus: str | None = setting(None, "--corpus", help="The passages (JSONL(.gz) or a Lucene index).")
    candidates: str | None = setting(None, "--candidates",
                                     help="A rank_llm/RankGPT candidates JSON (query and passage texts).")
    query: str | None = setting(None, "--query", metavar="QID",
                                help="The query whose window is printed [default: the run's first].")
    window_index: int = setting(0, "--window-index", metavar="N", min=0,
                                help="The query's N-th window (from 0) in the order the strategy sends them, "
                                "every answer before it keeping its window's order.")
    window: int = setting(RerankOptions.window, "--window", help="How many passages each window holds.")
    step: int = setting(RerankOptions.step, "--step", help="How many positions the window moves (sliding).")
    depth: int = setting(RerankOptions.depth, "--depth", help="Rerank the top DEPTH docs.")
    window_schedule: str = setting(RerankOptions.window_schedule, "--window-schedule", choices=WINDOW_SCHEDULES,
                                   help="The sliding window's schedule: fixed or official.")
    strategy: str = setting(RerankOptions.strategy, "--strategy", metavar="NAME",
                            help="The window strategy: sliding or tdpart.")
    fmt: str = setting("text", "--format", choices=PROMPT_FORMATS,
                       help="The layout: text (readable) or json (the messages as the backend gets them).")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.action == "show" and not self.target:
            raise InputError("rearank prompt show needs a family's NAME or a template FILE")
        if self.action == "list" and self.target:
            raise InputError(f"rearank prompt list takes no argument (got {self.target!r})")
