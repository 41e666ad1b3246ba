"""Prompt strings exactly as spec sections 3-4 give them."""

from __future__ import annotations

import re

import pytest

from rearank_cli.backends.base import ContextTooLong, Sampling
from rearank_cli.errors import InputError
from rearank_cli.prompt_fit import PromptFit, estimate_tokens
from rearank_cli.prompts import PROMPTS, answer_regex, build_messages, clean_passage, get_prompt, prompt_hash

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
    with pytest.raises(InputError, match="--prompt: 'other' is not one of rearank, rankgpt"):
        build_messages("other", "q", [])
    assert prompt_hash("rearank") != prompt_hash("rankgpt")
    assert len(prompt_hash("rearank")) == 16


def test_prompt_hashes_are_pinned():
    """Journals, manifests and augment rows record these: a change must be deliberate."""
    assert prompt_hash("rearank") == PROMPTS["rearank"].hash == "8db0dd6d73a50685"
    assert prompt_hash("rankgpt") == PROMPTS["rankgpt"].hash == "2f1f9fb313ca27a1"


def test_a_request_carries_what_the_prompt_asks_for():
    request = get_prompt("rearank").request("q", ["a", "b", "c"], Sampling(max_tokens=7), session="q1")
    assert request.messages == build_messages("rearank", "q", ["a", "b", "c"])
    assert (request.window_size, request.answer_tags, request.session) == (3, True, "q1")
    assert request.sampling.max_tokens == 7 and request.answer_regex == answer_regex(3)
    plain = get_prompt("rankgpt").request("q", ["a", "b"])
    assert (plain.window_size, plain.answer_tags, plain.answer_regex) == (2, False, None)


def test_answer_regex_accepts_exactly_a_full_ranking_of_the_window():
    pattern = re.compile(answer_regex(3))
    assert pattern.fullmatch(" [2] > [3] > [1] </answer>")
    assert pattern.fullmatch("[1] > [1] > [1]</answer>")  # duplicates are the parser's job
    assert not pattern.fullmatch(" [2] > [4] > [1]</answer>")
    assert not pattern.fullmatch(" [2] > [1]</answer>")
    assert not pattern.fullmatch(" [2] > [3] > [1] > [1]</answer>")
    assert re.compile(answer_regex(1)).fullmatch(" [1]</answer>")
    assert re.compile(answer_regex(20)).fullmatch(" " + " > ".join(f"[{i}]" for i in range(20, 0, -1)) + "</answer>")


def test_prompt_fit_cuts_every_passage_until_the_window_fits():
    prompt, sampling = PROMPTS["rearank"], Sampling(max_tokens=100)
    texts = [f"passage {i} " + "word " * 200 for i in range(5)]
    unknown = PromptFit(prompt, sampling, None, lambda messages: None)
    assert unknown.request("q", texts, "s") == (prompt.request("q", texts, sampling, "s"), None)
    fit = PromptFit(prompt, sampling, 900, lambda messages: None)  # no tokenizer: estimated from the bytes
    request, chars = fit.request("q", texts, "s")
    assert chars is not None and chars < 400 and estimate_tokens(request.messages) <= 900 - 100
    assert request == prompt.request("q", texts, sampling, "s", max_chars=chars)
    shorter, fewer = fit.shorter(ContextTooLong("too long", prompt_tokens=1200, context=700), "q", texts, request,
                                 chars)
    assert fewer < chars and fit.context == 700 and shorter.session == "s"
    with pytest.raises(ContextTooLong):
        PromptFit(prompt, sampling, 150, lambda messages: None).request("q", texts)
