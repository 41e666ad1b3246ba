"""The openai backend's reading of a completion: reasoning a server split off goes back in `<think>` only
when the request's prompt asks for answer tags (never decided from the prompt text); and the cause named
when a server refuses a request for good."""

from __future__ import annotations

import json

import pytest

from rearank_cli.backends.base import BackendError, BackendFatal, ContextTooLong
from rearank_cli.backends.openai_api import OpenAIBackend, UnknownModel


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


def error(message: str, code: str | None = None) -> str:
    return json.dumps({"error": {"message": message, "type": "BadRequestError", "code": code}})


@pytest.mark.parametrize("status,text,kind,cause", [
    (404, error("The model `m` does not exist."), UnknownModel, "--model m is not served"),  # vLLM
    (404, error("The model `m` does not exist or you do not have access to it.", "model_not_found"), UnknownModel,
     "--model m is not served"),  # OpenAI
    (404, json.dumps({"error": 'model "m" not found, try pulling it first'}), UnknownModel,
     "--model m is not served"),  # Ollama
    (400, error("Invalid model name passed in model=m"), UnknownModel, "--model m is not served"),  # LiteLLM
    (400, error("top_p must be in (0, 1], got 0.0."), BackendFatal, "check --top-p"),
    (400, error("max_tokens must be at least 1, got 0."), BackendFatal, "check --max-tokens"),
    (404, json.dumps({"detail": "Not Found"}), BackendFatal, "has no chat completions endpoint"),
    (401, error("Incorrect API key provided"), BackendFatal, "check --api-key-env"),
    (422, error("something else"), BackendFatal, "check --model and the decoding flags"),
    (400, error("This model's maximum context length is 4096 tokens."), ContextTooLong, "context is too small"),
    (500, "oops", BackendError, "HTTP 500: oops"),
])
def test_a_refused_request_names_its_cause(status, text, kind, cause):
    backend = OpenAIBackend("m", "http://127.0.0.1:1/v1")
    backend.served_models = []  # a server without a model list
    got = backend.refused(status, text)
    assert type(got) is kind and cause in str(got), str(got)
    assert getattr(got, "exit_code", None) == (2 if kind is UnknownModel else 1)
