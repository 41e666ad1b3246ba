"""REARANK and RankGPT prompt builders (spec sections 2-4), as chat message lists.

The strings are exact: the released checkpoint was trained on them. The backend applies the
model's chat template; nothing here depends on a model name. `PROMPTS` holds the registry by name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from rearank_cli.backends.base import Message, Request, Sampling
from rearank_cli.errors import InputError

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
PASSAGE_TURN = "[{i}] {passage}"


@dataclass(frozen=True)
class Prompt:
    """One listwise prompt: its template strings, how long a passage may be, and whether it asks the
    model for `<think>`/`<answer>` tags. Everything a backend or the scheduler needs to know about a
    prompt comes from here, never from reading the messages back."""

    name: str
    system: str
    prefix: str
    suffix: str
    passage_chars: int
    answer_tags: bool
    ready: str = READY
    passage_turn: str = PASSAGE_TURN
    #: the assistant's turn after each passage (`Received passage [i].`), or None for none
    acknowledgement: str | None = None

    def messages(self, query: str, passages: Sequence[str], max_chars: int | None = None) -> list[Message]:
        """Chat messages for one window of raw passage texts; `max_chars` overrides `passage_chars` (used
        only to shorten prompts that would not fit the model's context)."""
        limit = self.passage_chars if max_chars is None else max_chars
        cleaned = [clean_passage(text, limit) for text in passages]
        num = len(cleaned)
        messages = [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.prefix.format(query=query, num=num)},
            {"role": "assistant", "content": self.ready},
        ]
        for i, passage in enumerate(cleaned, 1):
            messages.append({"role": "user", "content": self.passage_turn.format(i=i, passage=passage)})
            if self.acknowledgement is not None:
                messages.append({"role": "assistant", "content": self.acknowledgement.format(i=i)})
        messages.append({"role": "user", "content": self.suffix.format(query=query, num=num)})
        return messages

    @property
    def hash(self) -> str:
        """A short hash of the template strings and passage length, recorded in every output."""
        parts = [self.system, self.prefix, self.ready, self.passage_turn]
        if self.acknowledgement is not None:
            parts.append(self.acknowledgement)
        parts += [self.suffix, str(self.passage_chars)]
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]

    def recovery_regex(self, size: int) -> str | None:
        """The regex of a complete answer over ids 1..size (` [i] > [j] > ... </answer>`, exactly `size`
        items) that completes a cut-off generation; None for a prompt without answer tags."""
        if not self.answer_tags or size < 1:
            return None
        return answer_regex(size)

    def request(self, query: str, passages: Sequence[str], sampling: Sampling | None = None,
                session: str | None = None, max_chars: int | None = None) -> Request:
        """The backend request for one window: the messages plus what the backend may need to know of them
        (the window size, whether answer tags are asked for, the recovery regex) and the query's session."""
        return self.wrap(self.messages(query, passages, max_chars), len(passages), sampling, session)

    def wrap(self, messages: Sequence[Message], size: int, sampling: Sampling | None = None,
             session: str | None = None) -> Request:
        """The backend request of a window of `size` passages whose messages this prompt built (see
        `request`; `prompt_fit.PromptFit` builds shortened ones)."""
        return Request(messages, sampling or Sampling(), window_size=size, answer_tags=self.answer_tags,
                       session=session, answer_regex=self.recovery_regex(size))


def answer_regex(size: int) -> str:
    """Regex of a complete answer over ids 1..size: ` [i] > [j] > ... </answer>` with exactly `size` items."""
    ids = "|".join(str(i) for i in range(size, 0, -1))
    item = rf"\[(?:{ids})\]"
    repeat = rf"(?: > {item}){{{size - 1}}}" if size > 1 else ""
    return rf" ?{item}{repeat} ?</answer>"


#: the prompts by name (`--prompt`)
PROMPTS: dict[str, Prompt] = {
    "rearank": Prompt("rearank", REARANK_SYSTEM, REARANK_PREFIX, REARANK_SUFFIX, passage_chars=400,
                      answer_tags=True, acknowledgement="Received passage [{i}]."),
    "rankgpt": Prompt("rankgpt", RANKGPT_SYSTEM, RANKGPT_PREFIX, RANKGPT_SUFFIX, passage_chars=300,
                      answer_tags=False),
}
#: passage length per prompt name (for readers of old records: the report)
PASSAGE_CHARS = {name: prompt.passage_chars for name, prompt in PROMPTS.items()}


def get_prompt(name: str) -> Prompt:
    """The prompt called `name`; InputError (exit status 2) listing the known names otherwise."""
    prompt = PROMPTS.get(name)
    if prompt is None:
        raise InputError(f"unknown prompt {name!r}; choose one of {', '.join(PROMPTS)}")
    return prompt


def clean_passage(text: str, max_chars: int) -> str:
    """Drop an empty `Title: Content: ` prefix, collapse whitespace, keep the first `max_chars` characters."""
    text = text.replace("Title: Content: ", "").strip()
    return " ".join(text.split())[:max_chars]


def build_messages(
    prompt: str, query: str, passages: Sequence[str], max_chars: int | None = None
) -> list[Message]:
    """Chat messages for one window of prompt `prompt` (by name); see `Prompt.messages`."""
    return get_prompt(prompt).messages(query, passages, max_chars)


def prompt_hash(prompt: str) -> str:
    """`Prompt.hash` of the prompt called `prompt`."""
    return get_prompt(prompt).hash
