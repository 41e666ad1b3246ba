"""RankGPT as published and as castorini/rank_llm main (1b3cabb) runs it: `rank_gpt_template.yaml`.

A system message, the instruction with the assistant's "Okay, please provide the passages.", then for every
passage a user turn `[i] text` answered by the assistant's `Received passage [i].`, and the closing
instruction. Passages are mended with ftfy and cut to 300 words; the messages are sent as they are (no
chat-template pass). The answer's ids are read after the last `</think>`. The strings are exact. (The
`rankgpt` family is the REARANK authors' variant: no acknowledgement turns, 300 characters.)
"""

from __future__ import annotations

from rearank_cli.prompts.base import Decoding
from rearank_cli.prompts.rankllm_chat import MultiTurn

SYSTEM = "You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query."
PREFIX_USER = (
    "I will provide you with {num} passages, each indicated by number identifier [].\nRank the passages based "
    "on their relevance to query: {query}."
)
SUFFIX_USER = (
    "Search Query: {query}.\nRank the {num} passages above based on their relevance to the search query. The "
    "passages should be listed in descending order using identifiers. The most relevant passages should be "
    "listed first. The output format should be [] > [], e.g., [1] > [2]. Only response the ranking results, "
    "do not say any word or explain."
)

FAMILY = MultiTurn(
    name="rankgpt-rankllm",
    summary="RankGPT as published and as rank_llm runs rank_gpt_template.yaml (castorini/rank_llm 1b3cabb).",
    system=SYSTEM, prefix_user=PREFIX_USER, prefix_assistant="Okay, please provide the passages.",
    body_user="[{rank}] {candidate}", body_assistant="Received passage [{rank}].", suffix_user=SUFFIX_USER,
    passage_chars=2400, decoding=Decoding(max_tokens=2048, temperature=0.0, top_p=1.0),
)
