"""Counters of a rerank run: windows, parse failures by kind, tokens, throughput, and their summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rearank_cli.rerank.records import RunSummary, TokenCounts, WindowCounts, WindowRecord

#: parse-failure kinds counted per window (a window can count in several)
FAILURE_KINDS = ("no_answer_tag", "answer_unclosed", "think_unclosed", "missing_ids", "duplicated_ids",
                 "out_of_range_ids", "not_clean")


@dataclass
class RerankStats:
    """Counters of one `rerank_queries` call (replayed windows count in totals, not in throughput)."""

    queries: int = 0
    windows: int = 0
    replayed: int = 0
    generated: int = 0
    failed: int = 0
    shortened: int = 0
    finish_length: int = 0
    parse: Counter[str] = field(default_factory=Counter)
    backend_flags: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    session_prompt_tokens: int = 0
    session_completion_tokens: int = 0
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> RunSummary:
        """The run's summary, with throughput over the windows generated in this session."""
        wall = max(self.wall_s, 1e-9)
        return RunSummary(
            self.queries,
            WindowCounts(self.windows, self.replayed, self.generated, self.failed, self.shortened, self.finish_length),
            {kind: self.parse.get(kind, 0) for kind in FAILURE_KINDS}, dict(self.backend_flags),
            TokenCounts(self.prompt_tokens, self.completion_tokens, self.session_prompt_tokens,
                        self.session_completion_tokens),
            round(self.wall_s, 3), round(self.generated / wall, 4), round(self.session_completion_tokens / wall, 2),
            tuple(self.errors[:5]),
        )

    def as_dict(self) -> dict[str, Any]:
        """`summary()` as JSON (the manifest's `summary`)."""
        return self.summary().to_json()

    def count_record(self, record: WindowRecord, tags: bool = True) -> None:
        """Add one window record (replayed or new) to the totals; `tags`: the prompt asks for answer tags."""
        self.windows += 1
        self.prompt_tokens += record.prompt_tokens
        self.completion_tokens += record.completion_tokens
        if record.failed:
            self.failed += 1
            return
        if record.max_chars is not None:
            self.shortened += 1
        if record.finish_reason == "length":
            self.finish_length += 1
        for kind in failure_kinds(record.flags, tags):
            self.parse[kind] += 1
        for name, value in record.backend_flags.items():
            if value:
                self.backend_flags[name] += 1


def failure_kinds(flags: Mapping[str, Any], tags: bool = True) -> list[str]:
    """Parse-failure kinds of one window from its parser flags (see `parse.ParseFlags`). `tags`: the
    prompt asks for `<think>`/`<answer>` (rearank); the zero-shot rankgpt prompt does not, so missing
    tags are no failure there."""
    kinds = []
    if tags:
        for key, kind in (("answer_tag", "no_answer_tag"), ("answer_closed", "answer_unclosed"),
                          ("think_closed", "think_unclosed")):
            if not flags.get(key):
                kinds.append(kind)
    for key, kind in (("missing", "missing_ids"), ("duplicated", "duplicated_ids"),
                      ("out_of_range", "out_of_range_ids")):
        if flags.get(key):
            kinds.append(kind)
    if (tags and not flags.get("answer_closed")) or any(flags.get(k) for k in ("missing", "duplicated",
                                                                               "out_of_range")):
        kinds.append("not_clean")
    return kinds

