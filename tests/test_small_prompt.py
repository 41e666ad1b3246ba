"""The `rearank-small` family (one user turn, the answer begun with `<think>`) and what a begun answer needs
elsewhere: the reward scores the prefix plus the completion, train counts prompt tokens as TRL renders a
continued prompt, augment's `--min-headroom`, VeRL's parquet refused, and a real rerank on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from rearank_cli.augment.sampling import Settings
from rearank_cli.prompts import get_family
from rearank_cli.prompts.small import example_answer
from rearank_cli.train.grpo import continued_as_text, prompt_lengths
from rearank_cli.train.reward import begun_answer, format_reward, list_reward, rank_reward, responses
from tests.prompts.test_presets_run import rerank
from tests.test_augment import SMALL, run_case, write_case

FAMILY = get_family("rearank-small")
PASSAGES = ["  first   passage\n about fleas ", "second " + "x" * 400, "third"]


def test_a_window_is_one_user_turn_and_the_begun_answer():
    messages = FAMILY.messages("flea life cycle", PASSAGES)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["content"] == "<think>"
    user = messages[0]["content"]
    assert user.count("Search query: flea life cycle") == 2
    assert user.count("<answer>[1] > [2] > [3]</answer>") == 2
    assert "Rank the 3 passages below" in user and "Rank the 3 passages above" in user
    assert "[1] first passage about fleas\n[2] second " in user
    assert "[2] second " + "x" * 293 + "\n[3] third" in user  # cut to 300 characters


def test_example_answer_keeps_the_window_order():
    assert example_answer(1) == "[1]"
    assert example_answer(5) == "[1] > [2] > [3] > [4] > [5]"


def test_parse_reads_the_begun_think():
    # the digits of the reasoning are not read: the prefix opens the <think> the model closes
    order, flags = FAMILY.parse("Passage [3] is best.</think>", 3)
    assert order == [0, 1, 2] and flags.think_closed and not flags.answer_tag
    order, flags = FAMILY.parse("Passage [3] is best.</think><answer>[3] > [1]</answer>", 3)
    assert order == [2, 0, 1] and flags.answer_closed and flags.missing == 1


def test_the_family_is_listed_with_a_stable_hash():
    assert FAMILY.answer_tags and FAMILY.passage_chars == 300
    assert FAMILY.hash == get_family("rearank-small").hash != get_family("rearank").hash
    request = FAMILY.request("q", PASSAGES)
    assert request.continues and request.answer_tags


# -- the reward of a begun answer ---------------------------------------------------------------------------

PROMPT = FAMILY.messages("q", PASSAGES)
DONE = "Passage [2] answers.</think><answer>[2] > [1] > [3]</answer>"


def test_responses_put_the_begun_answer_first():
    assert begun_answer(PROMPT) == "<think>" and begun_answer([{"role": "user", "content": "u"}]) == ""
    assert responses([[{"role": "assistant", "content": DONE}]], prompts=[PROMPT]) == ["<think>" + DONE]
    assert responses([DONE], prompts=[[{"role": "user", "content": "u"}]]) == [DONE]
    assert responses([DONE]) == [DONE]


def test_format_and_list_rewards_see_the_prefix():
    completions = [[{"role": "assistant", "content": DONE}], [{"role": "assistant", "content": "[2] > [1]"}]]
    assert format_reward(completions, prompts=[PROMPT, PROMPT]) == [1.0, 0.0]
    assert format_reward(completions) == [0.0, 0.0]  # without the prompt the <think> is missing
    assert list_reward(completions, prompts=[PROMPT, PROMPT]) == [1.0, 0.0]


def test_rank_reward_reads_the_answer_behind_the_prefix():
    qrels = {"q1": {"a": 0, "b": 2, "c": 0}}
    think_digit = [{"role": "assistant", "content": "Passage [2] is best.</think>"}]
    common = {"qid": ["q1"], "docids": [["a", "b", "c"]], "r_init": [0.6309297535714575], "r_best": [1.0],
              "qrels": qrels}
    # with the prefix the reasoning's [2] is not an answer: the window keeps its order (gain 0)
    assert rank_reward([think_digit], prompts=[PROMPT], **common) == [0.0]
    assert rank_reward([[{"role": "assistant", "content": DONE}]], prompts=[PROMPT], **common) == [
        pytest.approx(1.0)]


class RecordingTokenizer:
    """Records the chat-template keywords it is called with; one token per character. With `bos`, the template
    starts with it and the tokenizer adds it by itself (as Llama 3's does)."""

    def __init__(self, bos: str | None = None) -> None:
        self.calls: list[dict] = []
        self.bos_token = bos

    def apply_chat_template(self, messages, tokenize=False, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append(kwargs)
        return (self.bos_token or "") + "|".join(m["content"] for m in messages)

    def __call__(self, texts, add_special_tokens=False):  # type: ignore[no-untyped-def]
        if isinstance(texts, str):
            return {"input_ids": ([0] if self.bos_token and add_special_tokens else []) + list(texts)}
        return {"input_ids": [list(text) for text in texts]}


def test_prompt_lengths_continue_a_begun_answer():
    tokenizer = RecordingTokenizer()
    rows = [{"prompt": PROMPT}, {"prompt": [{"role": "user", "content": "abc"}]}]
    assert prompt_lengths(rows, tokenizer)[1] == 3
    assert tokenizer.calls == [{"add_generation_prompt": False, "continue_final_message": True},
                               {"add_generation_prompt": True}]


def test_continued_prompts_go_to_trl_as_text_with_their_prefix():
    """TRL renders a conversational prompt with a new generation prompt after the begun answer: train renders
    it itself, continuing the answer, and passes the prefix on to the reward in a column."""
    tokenizer = RecordingTokenizer(bos="<s>")
    rows = [{"prompt": PROMPT, "qid": "q1"}, {"prompt": [{"role": "user", "content": "u"}], "qid": "q2"}]
    converted = continued_as_text(rows, tokenizer)
    assert converted[0]["prompt"] == PROMPT[0]["content"] + "|<think>"  # no second BOS
    assert converted[1]["prompt"] == "u" and converted[1]["qid"] == "q2"
    assert [row["answer_prefix"] for row in converted] == ["<think>", ""]
    assert tokenizer.calls == [{"add_generation_prompt": False, "continue_final_message": True},
                               {"add_generation_prompt": True}]
    plain = [{"prompt": [{"role": "user", "content": "u"}]}]
    assert continued_as_text(plain, tokenizer) is plain  # nothing begun: TRL renders the conversations


def test_continued_prompts_with_the_real_tokenizer(tiny_model):
    """With the tiny Qwen2 model's tokenizer: the text train hands TRL ends in the begun `<think>`, is what
    transformers renders with `continue_final_message`, and tokenizes (as TRL tokenizes text prompts) to the
    length `prompt_lengths` counted."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    rows = [{"prompt": PROMPT}]
    (row,) = continued_as_text(rows, tokenizer)
    assert row["prompt"] == tokenizer.apply_chat_template(PROMPT, tokenize=False, continue_final_message=True)
    assert row["prompt"].endswith("<think>") and row["answer_prefix"] == "<think>"
    assert len(tokenizer(row["prompt"])["input_ids"]) == prompt_lengths(rows, tokenizer)[0]


def test_rewards_take_the_prefix_column_with_text_prompts():
    texts = responses([DONE, "[2]"], prompts=["rendered", "rendered"], prefixes=["<think>", "<think>"])
    assert texts == ["<think>" + DONE, "<think>[2]"]
    assert format_reward([DONE], prompts=["rendered"], answer_prefix=["<think>"]) == [1.0]
    assert format_reward([DONE], prompts=["rendered"]) == [0.0]


# -- augment ------------------------------------------------------------------------------------------------


def test_min_headroom_drops_windows_that_can_gain_little(tmp_path):
    """Subsets that can gain less than 0.1 of nDCG@10 are dropped and counted; any headroom above 0 drops exactly
    the subsets already in their ideal order (q7's that hold e1, its only relevant doc, first in BM25 order)."""
    for name in ("all", "kept", "ideal"):
        (tmp_path / name).mkdir()
    every, _ = run_case(tmp_path / "all", SMALL)
    gains = sorted(round(row["r_best"] - row["r_init"], 4) for row in every)
    kept, summary = run_case(tmp_path / "kept", Settings(samples_per_query=10, window=3, depth=4, min_headroom=0.1))
    low = [row for row in every if row["r_best"] - row["r_init"] < 0.1]
    assert low and summary.dropped["r_best - r_init < 0.1"] == len(low)
    assert len(kept) == len(every) - len(low) and all(row["r_best"] - row["r_init"] >= 0.1 for row in kept)
    above_zero, _ = run_case(tmp_path / "ideal", Settings(samples_per_query=10, window=3, depth=4, min_headroom=1e-9))
    assert len(above_zero) == sum(gain > 0 for gain in gains) < len(every)  # the ideal ones only


def test_min_headroom_from_the_command_line(tmp_path, cli):
    paths = write_case(tmp_path)
    common = [paths["run"], "--qrels", paths["qrels"], "--topics", paths["topics"], "--corpus", paths["corpus"],
              "--window", "3", "--depth", "4", "--samples-per-query", "10", "--prompt", "rearank-small"]
    result = cli("augment", *common, "--min-headroom", "0.05")
    assert result.returncode == 0, result.stderr.decode()
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert rows and all(row["r_best"] - row["r_init"] >= 0.05 for row in rows)
    assert all(row["prompt"][-1] == {"role": "assistant", "content": "<think>"} for row in rows)
    assert "r_best - r_init < 0.05" in result.stderr.decode()
    bad = cli("augment", *common, "--min-headroom", "1.5")
    assert bad.returncode == 2 and b"--min-headroom" in bad.stderr


def test_parquet_refuses_a_begun_answer(tmp_path, cli):
    pytest.importorskip("pyarrow")
    paths = write_case(tmp_path)
    out = tmp_path / "train.parquet"
    result = cli("augment", paths["run"], "--qrels", paths["qrels"], "--topics", paths["topics"], "--corpus",
                 paths["corpus"], "--window", "3", "--depth", "4", "--prompt", "rearank-small", "--format",
                 "parquet", "-o", out)
    assert result.returncode == 2
    err = result.stderr.decode().strip().splitlines()
    assert err == ["rearank: error: --format parquet: prompt 'rearank-small' begins the assistant's answer, which "
                   "VeRL's loader does not continue (use --format jsonl with rearank train)"]
    assert not out.exists()


# -- rerank -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_rearank_small_reranks_with_a_real_model(cli, samples, tiny_model, tmp_path):
    """The hf backend continues the begun answer: the window's prompt tokens are those of its messages rendered
    with `continue_final_message` (ending in `<think>`), not with a new generation prompt after it."""
    from transformers import AutoTokenizer

    from rearank_cli.formats.candidates import read_candidates

    out = tmp_path / "small.trec"
    header, *windows = rerank(cli, samples, tiny_model, out, "--prompt", "rearank-small")
    assert len(windows) == 1
    assert json.loads(Path(f"{out}.manifest.json").read_text())["prompt"] == "rearank-small"
    assert "rearank-small" in json.dumps(header)
    window = windows[0]
    candidates = read_candidates(str(samples / "dl19-bm25-top100.candidates.json.gz"))
    messages = FAMILY.messages(candidates.topics[window["qid"]], [candidates.texts[d] for d in window["docids"]])
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    continued = tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)
    fresh = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert continued.endswith("<think>") and continued != fresh
    assert window["prompt_tokens"] == len(tokenizer(continued, add_special_tokens=False)["input_ids"])
