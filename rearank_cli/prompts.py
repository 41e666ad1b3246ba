"""REARANK and RankGPT prompt builders (spec sections 2-4), as chat message lists.

The strings are exact: the released checkpoint was trained on them. The backend applies the
model's chat template; nothing here depends on a model name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

Message = dict[str, str]

REARANK_SYSTEM = (
    "You are DeepRerank, an intelligent assistant that can rank passages based on their relevancy to the "
    "search query. You first thinks about the reasoning process in the mind and then provides the user "
    "with the answer."
)
REARANK_PREFIX = (
    "I will provide you with passages, each indicated by number identifier []. Rank the passages based on "
    "their relevance to the search query.Search Query: {query}. \nRank the {num} passages above based on "
    "their relevance to the search query.The passages should be listed in descending order using "
    "identifiers. The most relevant passages should be listed first. The output format should be "
    "<answer> [] > [] </answer>, e.g., <answer> [1] > [2] </answer>."
)
REARANK_SUFFIX = (
    'Please rank these passages according to their relevance to the search query: "{query}"\n'
    "            Follow these steps exactly:\n"
    "            1. First, within <think> tags, analyze EACH passage individually:\n"
    "            - Evaluate how well it addresses the query\n"
    "            - Note specific relevant information or keywords\n"
    "\n"
    "            2. Then, within <answer> tags, provide ONLY the final ranking in descending order of "
    "relevance using the format: [X] > [Y] > [Z]"
)
RANKGPT_SYSTEM = (
    "You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query."
)
RANKGPT_PREFIX = (
    "I will provide you with {num} passages, each indicated by number identifier []. \nRank the passages "
    "based on their relevance to query: {query}."
)
RANKGPT_SUFFIX = (
    "Search Query: {query}. \nRank the {num} passages above based on their relevance to the search query. "
    "The passages should be listed in descending order using identifiers. The most relevant passages "
    "should be listed first. The output format should be [] > [], e.g., [1] > [2]. Only response the "
    "ranking results, do not say any word or explain."
)
READY = "Okay, please provide the passages."

PROMPTS = ("rearank", "rankgpt")
PASSAGE_CHARS = {"rearank": 400, "rankgpt": 300}


def clean_passage(text: str, max_chars: int) -> str:
    """Drop an empty `Title: Content: ` prefix, collapse whitespace, keep the first `max_chars` characters."""
    text = text.replace("Title: Content: ", "").strip()
    return " ".join(text.split())[:max_chars]


def build_messages(
    prompt: str, query: str, passages: Sequence[str], max_chars: int | None = None
) -> list[Message]:
    """Chat messages for one window: `prompt` is `rearank` or `rankgpt`; passages are raw doc texts.

    `max_chars` overrides the prompt's passage length (used only to shorten prompts that would not fit
    the model's context).
    """
    if prompt not in PROMPTS:
        raise ValueError(f"unknown prompt {prompt!r}; choose one of {', '.join(PROMPTS)}")
    limit = PASSAGE_CHARS[prompt] if max_chars is None else max_chars
    cleaned = [clean_passage(text, limit) for text in passages]
    num = len(cleaned)
    if prompt == "rearank":
        messages = [
            {"role": "system", "content": REARANK_SYSTEM},
            {"role": "user", "content": REARANK_PREFIX.format(query=query, num=num)},
            {"role": "assistant", "content": READY},
        ]
        for i, passage in enumerate(cleaned, 1):
            messages.append({"role": "user", "content": f"[{i}] {passage}"})
            messages.append({"role": "assistant", "content": f"Received passage [{i}]."})
        messages.append({"role": "user", "content": REARANK_SUFFIX.format(query=query)})
        return messages
    messages = [
        {"role": "system", "content": RANKGPT_SYSTEM},
        {"role": "user", "content": RANKGPT_PREFIX.format(query=query, num=num)},
        {"role": "assistant", "content": READY},
    ]
    messages.extend({"role": "user", "content": f"[{i}] {passage}"} for i, passage in enumerate(cleaned, 1))
    messages.append({"role": "user", "content": RANKGPT_SUFFIX.format(query=query, num=num)})
    return messages


def prompt_hash(prompt: str) -> str:
    """A short hash of a prompt's template strings and passage length, recorded in every output."""
    if prompt == "rearank":
        parts = [REARANK_SYSTEM, REARANK_PREFIX, READY, "[{i}] {passage}", "Received passage [{i}].", REARANK_SUFFIX]
    elif prompt == "rankgpt":
        parts = [RANKGPT_SYSTEM, RANKGPT_PREFIX, READY, "[{i}] {passage}", RANKGPT_SUFFIX]
    else:
        raise ValueError(f"unknown prompt {prompt!r}")
    parts.append(str(PASSAGE_CHARS[prompt]))
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]
