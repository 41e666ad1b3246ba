"""Reading a model's ranking answer (spec section 5): always a permutation of the window."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass

ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


@dataclass
class ParseFlags:
    """What the parser saw. `truncated`: the text has no closing `</answer>`."""

    answer_tag: bool = False
    answer_closed: bool = False
    think_closed: bool = False
    truncated: bool = False
    ids_found: int = 0
    missing: int = 0
    duplicated: int = 0
    out_of_range: int = 0

    @property
    def clean(self) -> bool:
        """True when the answer named every passage exactly once and nothing else."""
        return self.answer_closed and not (self.missing or self.duplicated or self.out_of_range)

    def as_dict(self) -> dict[str, int | bool]:
        """Plain dict for journals and manifests."""
        return asdict(self)


def answer_span(text: str) -> str:
    """The part of the text the ranking is read from (spec section 5, steps 1 then 2).

    Step 1: with `<answer>` in the text, the first closed `<answer>…</answer>` block, else the whole
    text (stripped). Step 2, on what step 1 kept: with `<think>` in it, only what follows its last
    `</think>` (all of it when there is none).
    """
    span = text
    if "<answer>" in span:
        match = ANSWER_RE.search(span)
        span = (match.group(1) if match else span).strip()
    if "<think>" in span:
        span = span.rsplit("</think>", 1)[-1]
    return span


def answer_numbers(span: str) -> list[int]:
    """The integers of `span` as the authors read them (spec section 5, step 3).

    Every character that `str.isdigit()` rejects becomes a space; each whitespace-separated token is
    converted with `int()`, and a token `int()` rejects (e.g. one holding a superscript digit, or longer
    than the interpreter's integer string limit) is skipped whole.
    """
    cleaned = "".join(char if char.isdigit() else " " for char in span)
    numbers = []
    for token in cleaned.split():
        try:
            numbers.append(int(token))
        except ValueError:
            continue
    return numbers


def parse_ranking(text: str, size: int) -> tuple[list[int], ParseFlags]:
    """Parse `text` into a permutation of `range(size)` plus flags (spec section 5).

    Ids are 1-based in the text. The first occurrence of an id counts; ids outside the window
    are dropped; passages the model left out follow in their current order.
    """
    return fill_order(answer_numbers(answer_span(text)), size, text)


def fill_order(numbers: Iterable[int], size: int, text: str) -> tuple[list[int], ParseFlags]:
    """The permutation of `range(size)` that the 1-based `numbers` give and the flags of `text`: the first
    occurrence of an id counts, ids outside the window are dropped, passages left out follow in order."""
    flags = ParseFlags(answer_tag="<answer>" in text, answer_closed="</answer>" in text,
                       think_closed="</think>" in text)
    flags.truncated = not flags.answer_closed
    order: list[int] = []
    placed = [False] * size
    for number in numbers:
        flags.ids_found += 1
        index = number - 1
        if not 0 <= index < size:
            flags.out_of_range += 1
        elif placed[index]:
            flags.duplicated += 1
        else:
            placed[index] = True
            order.append(index)
    rest = [i for i in range(size) if not placed[i]]
    flags.missing = len(rest)
    return order + rest, flags
