"""The rules castorini/rank_llm (and ReasonRank, which grew out of it) apply to every listwise prompt and
answer, for the families that follow one of them exactly.

Passages: stripped, mended with ftfy's `fix_text`, cut to a number of words, and every `[n]` in them
written `(n)` so a passage cannot look like an identifier. The whole chat-templated prompt is then passed
through `fix_text` again; ftfy stops decoding HTML entities from the first line holding `<` on, and a
chat template that opens with a `<` marker (Qwen's, Zephyr's) makes that the whole prompt, which
`fix_prompt` reproduces on each message. Answers: the characters Python calls digits
(after mapping superscript, subscript, circled and full-width digits to ASCII) make the ids; ids are
1-based, the first occurrence counts, ids outside the window are dropped and passages left out follow
in window order. An id that `int()` rejects makes the whole answer unreadable: the window keeps its order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rearank_cli.backends.base import Message
from rearank_cli.parse import ParseFlags

#: look-alike digits rank_llm maps to ASCII before reading an answer
FAKE_DIGITS = str.maketrans(
    "⁰¹²³⁴⁵⁶⁷⁸⁹₀₁₂₃₄₅₆₇₈₉①②③④⑤⑥⑦⑧⑨❶❷❸❹❺❻❼❽❾０１２３４５６７８９🄀🄁🄂🄃🄄🄅🄆🄇🄈🄉",
    "0123456789012345678912345678912345678901234567890123456789",
)
BRACKETED = re.compile(r"\[(\d+)\]")


def replace_number(text: str) -> str:
    """`[n]` written `(n)` (a passage or query must not contain something that reads as an identifier)."""
    return BRACKETED.sub(r"(\1)", text)


def fix_text(text: str, unescape_html: bool = True) -> str:
    """ftfy's `fix_text` with its default settings (HTML entities decoded unless the text holds `<`), or
    never decoding them."""
    import ftfy

    if unescape_html:
        return ftfy.fix_text(text)
    return ftfy.fix_text(text, unescape_html=False)


def cut_words(text: str, words: float) -> str:
    """The first `int(words)` whitespace-separated words of `text`, joined by single spaces."""
    return " ".join(text.split()[: int(words)])


def passage_words(text: str, words: float) -> str:
    """One passage as rank_llm shows it: stripped, mended, cut to `words` words, `[n]` written `(n)`."""
    return replace_number(cut_words(fix_text(text.strip()), words))


def fix_prompt(messages: Sequence[Message]) -> list[Message]:
    """The messages as they read after `fix_text` over the chat-templated prompt (no HTML unescaping)."""
    return [{**message, "content": fix_text(message["content"], unescape_html=False)} for message in messages]


def answer_ids(text: str, map_digits: bool = True) -> list[int] | None:
    """The ids of an answer span (look-alike digits mapped first unless `map_digits` is False, as in
    ReasonRank's copy); None when one is not a number `int()` reads, which makes the whole answer
    unreadable."""
    mapped = text.translate(FAKE_DIGITS) if map_digits else text
    spaced = "".join(char if char.isdigit() else " " for char in mapped)
    try:
        return [int(token) for token in spaced.split()]
    except ValueError:
        return None


def fill(ids: Sequence[int] | None, size: int, text: str) -> tuple[list[int], ParseFlags]:
    """The permutation of `range(size)` that 1-based `ids` give (first occurrence counts, others dropped,
    left-out passages after, in window order) and the flags of `text` (`parse.ParseFlags`)."""
    flags = ParseFlags(answer_tag="<answer>" in text, answer_closed="</answer>" in text,
                       think_closed="</think>" in text)
    flags.truncated = not flags.answer_closed
    order: list[int] = []
    placed = [False] * size
    for number in ids or ():
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


def after_think(text: str) -> str:
    """What rank_llm reads an answer from: the text after the last `</think>` (stripped), or all of it."""
    if "</think>" in text:
        return text.split("</think>")[-1].strip()
    return text


def parse_after_think(text: str, size: int) -> tuple[list[int], ParseFlags]:
    """rank_llm's reading of a listwise answer: ids after the last `</think>`, filled (see `fill`)."""
    return fill(answer_ids(after_think(text)), size, text)
