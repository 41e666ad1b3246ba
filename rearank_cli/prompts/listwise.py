"""The RankGPT-shaped chat that the `rearank` and `rankgpt` families share: a system message, an
instruction, an assistant's ready turn, one user turn per passage (each optionally acknowledged by an
assistant turn) and a closing instruction. Passages are cleaned and cut by characters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rearank_cli.backends.base import Message
from rearank_cli.prompts.base import PromptFamily

READY = "Okay, please provide the passages."
PASSAGE_TURN = "[{i}] {passage}"


@dataclass(frozen=True, kw_only=True)
class ListwiseChat(PromptFamily):
    """A family whose window is the RankGPT-shaped chat. `prefix`, `suffix` take `{query}` and `{num}`;
    `passage_turn` takes `{i}` and `{passage}`; `acknowledgement` (the assistant's turn after each
    passage, e.g. `Received passage [{i}].`) takes `{i}`, or is None for none."""

    system: str
    prefix: str
    suffix: str
    ready: str = READY
    passage_turn: str = PASSAGE_TURN
    acknowledgement: str | None = None

    def messages(self, query: str, passages: Sequence[str], max_chars: int | None = None) -> list[Message]:
        """Chat messages for one window of raw passage texts; `max_chars` overrides `passage_chars` (used
        only to shorten prompts that would not fit the model's context)."""
        cleaned = [self.clean(text, max_chars) for text in passages]
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

    def hash_parts(self) -> list[str]:
        """The template strings and the passage length."""
        parts = [self.system, self.prefix, self.ready, self.passage_turn]
        if self.acknowledgement is not None:
            parts.append(self.acknowledgement)
        return [*parts, self.suffix, str(self.passage_chars)]
