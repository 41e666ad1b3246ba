"""The openai backend's reading of a completion: reasoning a server split off goes back in `<think>` only
when the request's prompt asks for answer tags (never decided from the prompt text)."""

from __future__ import annotations

import json

from rearank_cli.backends.openai_api import OpenAIBackend


class Response:
    """The two things `_generation` reads of an httpx response."""

    def __init__(self, data: dict) -> None:
        self.text = json.dumps(data)

    def json(self) -> dict:
        return json.loads(self.text)


SPLIT = Response({"choices": [{"message": {"content": "<answer> [2] > [1] </answer>", "reasoning_content": "r"},
                               "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})


def test_reasoning_is_put_back_in_think_for_a_prompt_with_answer_tags():
    generation = OpenAIBackend._generation(SPLIT, answer_tags=True)
    assert generation.text == "<think>r</think><answer> [2] > [1] </answer>"
    assert (generation.prompt_tokens, generation.completion_tokens) == (5, 3)


def test_reasoning_is_left_out_for_a_prompt_without_answer_tags():
    assert OpenAIBackend._generation(SPLIT, answer_tags=False).text == "<answer> [2] > [1] </answer>"
