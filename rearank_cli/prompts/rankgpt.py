"""The zero-shot RankGPT prompt as the REARANK authors run it (spec section 4): no answer tags, no
acknowledgement turns, passages cut to 300 characters. The strings are exact."""

from __future__ import annotations

from rearank_cli.prompts.base import Decoding
from rearank_cli.prompts.listwise import ListwiseChat

SYSTEM = (
    "You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query."
)
PREFIX = (
    "I will provide you with {num} passages, each indicated by number identifier []. \nRank the passages "
    "based on their relevance to query: {query}."
)
SUFFIX = (
    "Search Query: {query}. \nRank the {num} passages above based on their relevance to the search query. "
    "The passages should be listed in descending order using identifiers. The most relevant passages "
    "should be listed first. The output format should be [] > [], e.g., [1] > [2]. Only response the "
    "ranking results, do not say any word or explain."
)

FAMILY = ListwiseChat(
    name="rankgpt", summary="RankGPT's zero-shot prompt as the REARANK authors run it (no reasoning tags).",
    system=SYSTEM, prefix=PREFIX, suffix=SUFFIX, passage_chars=300, answer_tags=False,
    decoding=Decoding(max_tokens=2048, temperature=0.0, top_p=1.0),
)
