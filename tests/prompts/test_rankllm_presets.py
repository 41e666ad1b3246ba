"""The families that follow castorini/rank_llm (`rank-k` at 631162d; `rankzephyr`, `qwen3`,
`rankgpt-rankllm` at main 1b3cabb) against rank_llm's own code: the messages and chat-templated prompts it
renders for real DL19 windows and the orders its parsers make of tricky answers, recorded by the
`make_fixture.py` scripts under `tests/fixtures/prompts/`."""

from __future__ import annotations

import pytest

from rearank_cli.prompts.qwen3 import FAMILY as QWEN3
from rearank_cli.prompts.rank_k import FAMILY as RANK_K
from rearank_cli.prompts.rankgpt_rankllm import FAMILY as RANKGPT_RANKLLM
from rearank_cli.prompts.rankzephyr import FAMILY as RANKZEPHYR
from tests.prompts.conftest import common, reference

FAMILIES = {"rank-k": RANK_K, "rankzephyr": RANKZEPHYR, "qwen3": QWEN3, "rankgpt-rankllm": RANKGPT_RANKLLM}
REFS = {name: reference(name) for name in FAMILIES}
WINDOWS = common.load_windows()
#: families whose reference applies a chat template itself, and the tokenizer fixture that has it
TEMPLATED = {"rank-k": "qwen25", "rankzephyr": "qwen25", "qwen3": "qwen3"}


@pytest.mark.parametrize("name", FAMILIES)
def test_each_fixture_is_of_the_windows_and_answers_given_here(name):
    ref = REFS[name]
    assert [(w["qid"], w["start"], w["end"], w["join"]) for w in ref["windows"]] == list(common.WINDOWS)
    assert [(a["size"], a["text"]) for a in ref["answers"]] == common.ANSWERS
    assert ref["reference"]["commit"].startswith("631162d" if name == "rank-k" else "1b3cabb")


@pytest.mark.parametrize("name", TEMPLATED)
@pytest.mark.parametrize("index", range(len(WINDOWS)))
def test_templated_prompt_equals_what_rank_llm_renders(request, name, index):
    tokenizer = request.getfixturevalue(TEMPLATED[name])  # the tokenizer the reference was given
    family, window, expected = FAMILIES[name].bind(tokenizer=tokenizer), WINDOWS[index], REFS[name]["windows"][index]
    messages = family.messages(window["query"], window["passages"])
    assert [m["role"] for m in messages] == [m["role"] for m in expected["messages"]]
    assert dict(family.chat_template_kwargs) == expected["chat_template_kwargs"]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                           **family.chat_template_kwargs)
    assert prompt == expected["prompt"]
    assert len(tokenizer.encode(prompt)) == expected["prompt_tokens"]


def test_the_long_window_makes_rank_llm_shorten_passages():
    long = [i for i, window in enumerate(WINDOWS) if window["join"] > 1]
    assert long and all(REFS[name]["windows"][i]["prompt_tokens"] > 3900 for name in TEMPLATED for i in long)
    first_passage = REFS["rankzephyr"]["windows"][long[0]]["messages"][1]["content"].split("\n")[1]
    assert len(first_passage.split()) < len(WINDOWS[long[0]]["passages"][0].split()) - 50


#: rank_llm's RankGPT shortens passages by OpenAI's tokenizer, which no family here has: the long window is left out
SHORT_WINDOWS = [i for i, window in enumerate(WINDOWS) if window["join"] == 1]


@pytest.mark.parametrize("index", SHORT_WINDOWS)
def test_rankgpt_rankllm_messages_equal_what_rank_llm_sends(index):
    window, expected = WINDOWS[index], REFS["rankgpt-rankllm"]["windows"][index]
    messages = RANKGPT_RANKLLM.messages(window["query"], window["passages"])
    assert messages == expected["messages"]
    assert len(messages) == 2 * len(window["passages"]) + 4


def test_rank_k_scales_its_word_budget_with_the_window():
    long_text = " ".join(f"w{i}" for i in range(2000))
    assert RANK_K.clean(long_text, size=20).split()[-1] == "w299"
    assert RANK_K.clean(long_text, size=7).split()[-1] == "w856"  # int(300 * (20 / 7)) words
    assert RANKZEPHYR.clean(long_text, size=7).split()[-1] == "w299"


def test_word_budget_is_a_parameter_and_is_hashed():
    shorter = RANKZEPHYR.bind({"passage_words": 50})
    assert shorter.clean(" ".join(["word"] * 80)) == " ".join(["word"] * 50)
    assert shorter.hash != RANKZEPHYR.hash


ANSWER_CASES = [(name, i) for name in FAMILIES for i in range(len(common.ANSWERS))]


@pytest.mark.parametrize(("name", "index"), ANSWER_CASES, ids=[f"{n}-{i}" for n, i in ANSWER_CASES])
def test_parser_agrees_with_rank_llm(name, index):
    answer = REFS[name]["answers"][index]
    order, _ = FAMILIES[name].parse(answer["text"], answer["size"])
    assert [i + 1 for i in order] == answer["order"]
