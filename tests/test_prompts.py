"""Prompt strings exactly as spec sections 3-4 give them."""

from __future__ import annotations

import pytest

from rearank_cli.prompts import build_messages, clean_passage, prompt_hash

SUFFIX = (
    'Please rank these passages according to their relevance to the search query: "q?"\n'
    "            Follow these steps exactly:\n"
    "            1. First, within <think> tags, analyze EACH passage individually:\n"
    "            - Evaluate how well it addresses the query\n"
    "            - Note specific relevant information or keywords\n\n"
    "            2. Then, within <answer> tags, provide ONLY the final ranking in descending order of relevance"
    " using the format: [X] > [Y] > [Z]"
)


def test_rearank_prompt_exact():
    messages = build_messages("rearank", "q?", ["alpha", "beta"])
    assert [m["role"] for m in messages] == [
        "system", "user", "assistant", "user", "assistant", "user", "assistant", "user",
    ]
    assert messages[0]["content"] == (
        "You are DeepRerank, an intelligent assistant that can rank passages based on their relevancy to the "
        "search query. You first thinks about the reasoning process in the mind and then provides the user "
        "with the answer."
    )
    assert messages[1]["content"] == (
        "I will provide you with passages, each indicated by number identifier []. Rank the passages based on "
        "their relevance to the search query.Search Query: q?. \nRank the 2 passages above based on their "
        "relevance to the search query.The passages should be listed in descending order using identifiers. "
        "The most relevant passages should be listed first. The output format should be <answer> [] > [] "
        "</answer>, e.g., <answer> [1] > [2] </answer>."
    )
    assert messages[2]["content"] == "Okay, please provide the passages."
    assert messages[3]["content"] == "[1] alpha"
    assert messages[4]["content"] == "Received passage [1]."
    assert messages[5]["content"] == "[2] beta"
    assert messages[6]["content"] == "Received passage [2]."
    assert messages[7]["content"] == SUFFIX


def test_rankgpt_prompt_exact():
    messages = build_messages("rankgpt", "q", ["a" * 500])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "user"]
    assert messages[0]["content"] == (
        "You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query."
    )
    assert messages[1]["content"] == (
        "I will provide you with 1 passages, each indicated by number identifier []. \n"
        "Rank the passages based on their relevance to query: q."
    )
    assert messages[3]["content"] == "[1] " + "a" * 300
    assert messages[4]["content"] == (
        "Search Query: q. \nRank the 1 passages above based on their relevance to the search query. The "
        "passages should be listed in descending order using identifiers. The most relevant passages should "
        "be listed first. The output format should be [] > [], e.g., [1] > [2]. Only response the ranking "
        "results, do not say any word or explain."
    )


def test_clean_passage():
    assert clean_passage("Title: Content:   a \n\t b  ", 400) == "a b"
    assert clean_passage("x\u00a0\u2003y", 400) == "x y"
    assert clean_passage("Title: T Content: " + "w " * 300, 400) == ("Title: T Content: " + "w " * 300)[:400]
    assert len(clean_passage("abc " * 200, 400)) == 400
    assert clean_passage("\u00c2\u00bc cup", 400) == "\u00c2\u00bc cup"


def test_rearank_truncates_to_400_chars():
    messages = build_messages("rearank", "q", ["z" * 1000])
    assert messages[3]["content"] == "[1] " + "z" * 400


def test_unknown_prompt_and_hash():
    with pytest.raises(ValueError):
        build_messages("other", "q", [])
    assert prompt_hash("rearank") != prompt_hash("rankgpt")
    assert len(prompt_hash("rearank")) == 16
