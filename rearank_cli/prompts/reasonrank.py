"""ReasonRank (liuwenhan/reasonrank-7B, -32B) as its authors' code prompts and parses: 8421BCD/ReasonRank
at e6d3ab4, prompt mode `rank_GPT_reasoning` as `run_rank_llm.py` sets it up.

One system message (the reasoning system prompt of `listwise_prompt_r1.toml`) and one user turn: the
instruction (rank_llm's, `rankllm_chat.PREFIX`), the passages as `[i] text` lines, the closing instruction.
Each passage is mended with ftfy and cut to `passage_tokens` tokens of the model's own tokenizer (the
dataset's budget in the authors' `DOC_MAXLEN`: 100 for TREC DL and BEIR, 512 for BRIGHT and R2MED). The answer
is read from the first `<think>...</think> <answer>...</answer>` (tags in any case), else from after the last
`<answer>`, else from the whole text; then as rank_llm reads ids (`rankllm.read_ids`), without its look-alike
digit map. The strings are exact.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rearank_cli.backends.base import Message
from rearank_cli.parse import ParseFlags, fill_order
from rearank_cli.prompts.base import Decoding, PromptFamily
from rearank_cli.prompts.rankllm import fix_prompt, fix_text, read_ids, replace_number
from rearank_cli.prompts.rankllm_chat import PREFIX
from rearank_cli.settings.base import Settings, setting

SYSTEM = (
    "You are RankLLM, an intelligent assistant that can rank passages based on their relevance to the query. "
    "Given a query and a passage list, you first thinks about the reasoning process in the mind and then "
    "provides the answer (i.e., the reranked passage list). The reasoning process and answer are enclosed "
    "within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process here "
    "</think> <answer> answer here </answer>."
)
SUFFIX = (
    "Search Query: {query}.\nRank the {num} passages above based on their relevance to the search query. All "
    "the passages should be included and listed using identifiers, in descending order of relevance. The "
    "format of the answer should be [] > [], e.g., [2] > [1]."
)
#: the answer pattern of `listwise_prompt_r1.toml`, matched against the lower-cased answer
ANSWER_PATTERN = re.compile(r"<think>.*?</think>\s*<answer>(.*?)</answer>", re.DOTALL)


@dataclass(frozen=True, kw_only=True)
class ReasonRankParams(Settings):
    """ReasonRank's own parameter."""

    command = "--prompt reasonrank"
    passage_tokens: int = setting(100, help="Tokens of the model's tokenizer kept of each passage (the "
                                  "authors use 100 for TREC DL and BEIR, 512 for BRIGHT and R2MED).", min=1)


@dataclass(frozen=True, kw_only=True)
class ReasonRank(PromptFamily):
    """The ReasonRank family (see the module docstring)."""

    Params = ReasonRankParams

    def messages(self, query: str, passages: Sequence[str], max_chars: int | None = None) -> list[Message]:
        """System message and one user turn for a window of raw passage texts."""
        query = replace_number(query).strip()
        num = len(passages)
        lines = [f"[{i}] {self.clean(text, max_chars)}\n" for i, text in enumerate(passages, 1)]
        user = PREFIX.format(num=num, query=query) + "\n" + "".join(lines) + SUFFIX.format(query=query, num=num)
        return fix_prompt([{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}])

    def clean(self, text: str, max_chars: int | None = None) -> str:
        """Mended, cut to `passage_tokens` tokens of the model's tokenizer (and to `max_chars` characters
        when the context guard asks), `[n]` written `(n)`."""
        tokenizer = self.require_tokenizer()
        tokens = tokenizer.tokenize(fix_text(text.strip()))[: self.params.passage_tokens]  # type: ignore[attr-defined]
        content = tokenizer.convert_tokens_to_string(tokens)
        if max_chars is not None:
            content = content[:max_chars]
        return replace_number(content)

    def parse(self, text: str, size: int) -> tuple[list[int], ParseFlags]:
        """ReasonRank's reading of an answer (see the module docstring) and rank_llm's fill rules."""
        match = ANSWER_PATTERN.search(text.lower())
        if match:
            span = match.group(1).strip()
        elif "<answer>" in text:
            span = text.split("<answer>")[-1]
        else:
            span = text
        return fill_order(read_ids(span, map_digits=False) or (), size, text)

    def hash_parts(self) -> list[str]:
        """The prompt strings and the answer pattern (the token budget is a parameter, hashed with them)."""
        return [SYSTEM, PREFIX, SUFFIX, ANSWER_PATTERN.pattern]


FAMILY = ReasonRank(
    name="reasonrank",
    summary="ReasonRank-7B/32B as its authors prompt and parse (8421BCD/ReasonRank e6d3ab4).",
    answer_tags=True, passage_chars=1000, needs_tokenizer=True,  # passage_chars: what a report shows
    decoding=Decoding(max_tokens=3172, temperature=0.0, top_p=1.0),
)
