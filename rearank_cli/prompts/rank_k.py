"""Rank-K (hltcoe/Rank-K-32B, a QwQ-32B fine-tune) as castorini/rank_llm runs it at commit 631162d, the
Rank-K pull request: `RankKReranker` with `rank_k_template.yaml`.

One user turn (no system message): the instruction with the query, then each passage as `[i] text` and
a blank line. Passages are cut to 300 words for a window of 20, scaled with the window (300 * 20 / size).
Thinking is on (`enable_thinking`). The answer is read from its last line only, after any `</think>`;
ties (`[2] = [1]`) count as the order they are written in. The strings are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from rearank_cli.parse import ParseFlags
from rearank_cli.prompts.base import Decoding
from rearank_cli.prompts.rankllm import parse_answer
from rearank_cli.prompts.rankllm_chat import SingleTurn

PREFIX = (
    "Determine a ranking of the passages based on how relevant they are to the query. \n"
    "If the query is a question, how relevant a passage is depends on how well it answers the question. \n"
    "If not, try analyze the intent of the query and assess how well each passage satisfy the intent. \n"
    "The query may have typos and passages may contain contradicting information. \n"
    "However, we do not get into fact-checking. We just rank the passages based on they relevancy to the "
    "query. \n\n"
    "Sort them from the most relevant to the least. \n"
    "Answer with the passage number using a format of `[3] > [2] > [4] = [1] > [5]`. \n"
    "Ties are acceptable if they are equally relevant. \n"
    "I need you to be accurate but overthinking it is unnecessary.\n"
    "Output only the ordering without any other text.\n\n"
    "Query: {query}\n\n"
)
BODY = "[{rank}] {candidate}\n\n"


@dataclass(frozen=True, kw_only=True)
class RankK(SingleTurn):
    """Rank-K's family: rank_llm's single-turn chat read from the answer's last line."""

    def parse(self, text: str, size: int) -> tuple[list[int], ParseFlags]:
        """The ids of the answer's last line (after stripping it), read as rank_llm reads them."""
        order, flags = parse_answer(text.strip().split("\n")[-1], size)
        flags.think_closed = "</think>" in text
        return order, flags


FAMILY = RankK(
    name="rank-k",
    summary="Rank-K (hltcoe/Rank-K-32B) as rank_llm's RankKReranker runs it (castorini/rank_llm 631162d).",
    prefix=PREFIX, body=BODY, suffix="", scale_words=True, passage_chars=2400,
    context_tokens=4096, answer_tokens_minus_one=True, needs_tokenizer=True,
    chat_template_kwargs={"enable_thinking": True},
    decoding=Decoding(max_tokens=8000, temperature=0.0, top_p=1.0),
)
