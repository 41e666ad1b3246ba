"""The `reasonrank` family against ReasonRank's own code (8421BCD/ReasonRank e6d3ab4): the prompts it
renders for real DL19 windows and the orders its parser makes of tricky answers, recorded by
`tests/fixtures/prompts/reasonrank/make_fixture.py`."""

from __future__ import annotations

import pytest

from rearank_cli.errors import InputError
from rearank_cli.prompts.reasonrank import FAMILY
from tests.prompts.conftest import common, reference

REF = reference("reasonrank")
WINDOWS = common.load_windows()


def test_the_fixture_is_of_the_windows_and_answers_given_here():
    assert [(w["qid"], w["start"], w["end"], w["join"]) for w in REF["windows"]] == list(common.WINDOWS)
    assert [(a["size"], a["text"]) for a in REF["answers"]] == common.ANSWERS
    assert REF["reference"]["commit"].startswith("e6d3ab4")


@pytest.mark.parametrize("index", range(len(WINDOWS)))
def test_prompt_equals_what_reasonrank_renders(qwen25, index):
    window, expected = WINDOWS[index], REF["windows"][index]
    family = FAMILY.bind(tokenizer=qwen25)
    messages = family.messages(window["query"], window["passages"])
    assert [m["role"] for m in messages] == [m["role"] for m in expected["messages"]]
    prompt = qwen25.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == expected["prompt"]
    assert len(qwen25.encode(prompt)) == expected["prompt_tokens"]


def test_passages_are_cut_by_the_models_tokens(qwen25):
    window = WINDOWS[1]
    short = FAMILY.bind(tokenizer=qwen25)
    long = FAMILY.bind({"passage_tokens": 512}, tokenizer=qwen25)
    cut = [short.clean(text) for text in window["passages"]]
    assert max(len(qwen25.tokenize(text)) for text in cut) <= 101  # a cut mid-word may re-tokenize one longer
    assert sum(len(a) < len(b) for a, b in zip(cut, map(long.clean, window["passages"]), strict=True)) > 0
    assert short.hash != long.hash


def test_without_the_models_tokenizer_it_says_so():
    with pytest.raises(InputError, match="tokenizer"):
        FAMILY.messages("q", ["a passage"])


@pytest.mark.parametrize("answer", REF["answers"], ids=range(len(REF["answers"])))
def test_parser_agrees_with_reasonrank(answer):
    order, _ = FAMILY.parse(answer["text"], answer["size"])
    assert [i + 1 for i in order] == answer["order"]
