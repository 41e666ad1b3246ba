"""What a rerank run would ask of the model, found without one (`rearank rerank --dry-run`). Pure: the
caller hands in the queries and a way to count a prompt (the model's tokenizer, or characters).

Each query's window strategy is driven as the scheduler drives it, with every answer keeping the order it
was given (no model is asked). The windows and their prompts are then those a real run sends whenever the
model's answers leave the passages in place; a real model moves passages between windows, so later windows
of a sliding pass may hold other passages (of other lengths). The number of windows is exact for the
sliding window; tdpart decides its later rounds from the answers, so its own estimate at the start is
reported beside the windows simulated here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rearank_cli.backends.base import Message
from rearank_cli.prompt_fit import PromptFit
from rearank_cli.rerank.plan import QueryInput, RerankSettings, Window
from rearank_cli.rerank.strategies.registry import new_state

#: counts one window's prompt: its messages (and the family's chat-template keywords, when it has any) -> a
#: size (tokens after the chat template, or characters), as `Backend.count_prompt_tokens` is called
Counter = Callable[..., int]


def count_characters(messages: Sequence[Message], chat_template_kwargs: Mapping[str, Any] | None = None) -> int:
    """The characters of the messages' contents (the size a prompt has when no tokenizer is at hand)."""
    return sum(len(message["content"]) for message in messages)


@dataclass(frozen=True)
class PlannedWindow:
    """One window a run would send, its prompt's size, and the passage length the context forced (None:
    not shortened)."""

    window: Window
    size: int
    max_chars: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The window as JSON: its journal key, docids and prompt size."""
        window = self.window
        return {"qid": window.qid, "pass": window.pass_, "index": window.index, "start": window.start,
                "end": window.end, "docids": list(window.docids), "prompt_size": self.size,
                "max_chars": self.max_chars}


@dataclass
class QueryPlan:
    """One query's windows, and the number of windows its strategy expected before the first answer."""

    qid: str
    windows: list[PlannedWindow]
    expected: int

    @property
    def size(self) -> int:
        """The prompt sizes of its windows, summed."""
        return sum(window.size for window in self.windows)


@dataclass
class DryRun:
    """What a run would ask: per query its windows and prompt sizes, in `unit` (tokens or characters)."""

    unit: str
    max_tokens: int
    queries: list[QueryPlan] = field(default_factory=list)

    @property
    def windows(self) -> int:
        """Windows in all."""
        return sum(len(query.windows) for query in self.queries)

    @property
    def expected(self) -> int:
        """Windows in all, as the strategies expected them before any answer."""
        return sum(query.expected for query in self.queries)

    @property
    def size(self) -> int:
        """Prompt sizes in all."""
        return sum(query.size for query in self.queries)

    def largest(self) -> int:
        """The largest window prompt (0 without windows)."""
        return max((window.size for query in self.queries for window in query.windows), default=0)

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON."""
        return {"unit": self.unit, "max_tokens": self.max_tokens, "queries": len(self.queries),
                "windows": self.windows, "expected_windows": self.expected, "prompt_size": self.size,
                "generated_tokens_at_most": self.windows * self.max_tokens,
                "per_query": [{"qid": query.qid, "expected": query.expected,
                               "windows": [window.to_json() for window in query.windows]}
                              for query in self.queries]}


def simulate(query: QueryInput, settings: RerankSettings) -> tuple[list[Window], int]:
    """The windows `settings.strategy` runs for `query` when every answer keeps its window's order, and the
    number of windows the strategy expected at the start."""
    state = new_state(query, settings)
    expected = state.remaining()
    windows: list[Window] = []
    while not state.done:
        ready = state.ready()
        if not ready:
            break
        for window in ready:
            windows.append(window)
            state.apply(window, list(range(len(window.docids))))
    return windows, expected


def plan_query(query: QueryInput, settings: RerankSettings, fit: PromptFit) -> QueryPlan:
    """One query's windows with their prompts' sizes; `fit` builds each window's request as the scheduler
    does (shortened when the context is known and the prompt would not fit it) and counts them."""
    windows, expected = simulate(query, settings)
    planned = []
    for window in windows:
        texts = [query.texts[docid] for docid in window.docids]
        request, max_chars = fit.request(query.query, texts, query.qid)
        planned.append(PlannedWindow(window, fit.tokens(request.messages), max_chars))
    return QueryPlan(query.qid, planned, expected)


def dry_run(queries: Iterable[QueryInput], settings: RerankSettings, count: Counter | None = None,
            context: int | None = None, unit: str = "tokens") -> DryRun:
    """The plan of a run over `queries`: prompts counted with `count` (characters when None, `unit` then
    ignored); `context`, the model's context in tokens when known, shortens prompts as a run would."""
    if count is None:
        count, unit, context = count_characters, "characters", None
    fit = PromptFit(settings.prompt_spec, settings.sampling, context, count)
    plan = DryRun(unit, settings.sampling.max_tokens)
    for query in queries:
        plan.queries.append(plan_query(query, settings, fit))
    return plan
