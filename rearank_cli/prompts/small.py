"""`rearank-small`: REARANK's `<think>`/`<answer>` answer in one user turn, for small models.

rearank's own prompt (no authors' code to match). REARANK's prompt spreads a window over many turns and
answers each passage with an assistant's `Received passage [i].`; a model of a few hundred million
parameters copies those turns instead of answering. Here the window is one user message: the
instruction with a worked example of the answer, the query, the numbered passages, then the query and
the instruction again; the assistant's answer is begun with `<think>` and the model continues it.

The response this family reads is that prefix plus what the model wrote (`parse`), so the tags, the
reward of `rearank train` and the parser see the whole answer. Passages are cut to 300 characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rearank_cli.backends.base import Message
from rearank_cli.parse import ParseFlags, parse_ranking
from rearank_cli.prompts.base import Decoding, PromptFamily

INSTRUCTION = (
    "Rank the {num} passages {where} by relevance to the search query. Reply in exactly this format: "
    "<think>Passage [1] answers the query best.</think><answer>{example}</answer>"
)
QUERY = "Search query: {query}"
PASSAGE = "[{i}] {passage}"
ANSWER_PREFIX = "<think>"


def example_answer(num: int) -> str:
    """The worked answer the instruction shows for a window of `num`: `[1] > [2] > ... > [num]` (the order
    of REARANK's own example, `<answer> [1] > [2] </answer>`: a copied example keeps the window's order)."""
    return " > ".join(f"[{i}]" for i in range(1, num + 1))


@dataclass(frozen=True, kw_only=True)
class OneTurnThink(PromptFamily):
    """A window as one user turn (instruction, query, passages, query, instruction) and an assistant
    answer begun with `answer_prefix`, which `parse` puts back in front of the model's text."""

    instruction: str = INSTRUCTION
    answer_prefix: str = ANSWER_PREFIX

    def messages(self, query: str, passages: Sequence[str], max_chars: int | None = None) -> list[Message]:
        """The user turn of one window and the assistant's begun answer."""
        cleaned = [self.clean(text, max_chars) for text in passages]
        num = len(cleaned)
        example = example_answer(num)
        ask = QUERY.format(query=query)
        body = "\n".join(PASSAGE.format(i=i, passage=passage) for i, passage in enumerate(cleaned, 1))
        user = "\n\n".join([
            self.instruction.format(num=num, where="below", example=example), ask, body,
            f"{ask}\n{self.instruction.format(num=num, where='above', example=example)}",
        ])
        return [{"role": "user", "content": user}, {"role": "assistant", "content": self.answer_prefix}]

    def parse(self, text: str, size: int) -> tuple[list[int], ParseFlags]:
        """REARANK's parser on the whole answer: the begun `<think>` and what the model wrote after it."""
        return parse_ranking(self.answer_prefix + text, size)

    def hash_parts(self) -> list[str]:
        """The instruction, the layout strings, the answer prefix and the passage length."""
        return [self.instruction, QUERY, PASSAGE, self.answer_prefix, str(self.passage_chars)]


FAMILY = OneTurnThink(
    name="rearank-small",
    summary="REARANK's <think>/<answer> answer in one user turn, begun with <think> (rearank's own; small models).",
    passage_chars=300, answer_tags=True, decoding=Decoding(max_tokens=256, temperature=0.0, top_p=1.0),
)
