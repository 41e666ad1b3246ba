"""The REARANK prompt (spec sections 2-3): the reasoning prompt the released checkpoint was trained on,
with `<think>`/`<answer>` tags, an acknowledgement after every passage and passages cut to 400
characters. The strings are exact."""

from __future__ import annotations

from rearank_cli.prompts.base import Decoding
from rearank_cli.prompts.listwise import ListwiseChat

SYSTEM = (
    "You are DeepRerank, an intelligent assistant that can rank passages based on their relevancy to the "
    "search query. You first thinks about the reasoning process in the mind and then provides the user "
    "with the answer."
)
PREFIX = (
    "I will provide you with passages, each indicated by number identifier []. Rank the passages based on "
    "their relevance to the search query.Search Query: {query}. \nRank the {num} passages above based on "
    "their relevance to the search query.The passages should be listed in descending order using "
    "identifiers. The most relevant passages should be listed first. The output format should be "
    "<answer> [] > [] </answer>, e.g., <answer> [1] > [2] </answer>."
)
SUFFIX = (
    'Please rank these passages according to their relevance to the search query: "{query}"\n'
    "            Follow these steps exactly:\n"
    "            1. First, within <think> tags, analyze EACH passage individually:\n"
    "            - Evaluate how well it addresses the query\n"
    "            - Note specific relevant information or keywords\n"
    "\n"
    "            2. Then, within <answer> tags, provide ONLY the final ranking in descending order of "
    "relevance using the format: [X] > [Y] > [Z]"
)

FAMILY = ListwiseChat(
    name="rearank", summary="REARANK's reasoning prompt (<think>/<answer>; the released checkpoints).",
    system=SYSTEM, prefix=PREFIX, suffix=SUFFIX, passage_chars=400, answer_tags=True,
    acknowledgement="Received passage [{i}].", decoding=Decoding(max_tokens=2048, temperature=0.0, top_p=1.0),
)
