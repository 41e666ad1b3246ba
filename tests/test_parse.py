"""The answer parser of spec section 5, and its permutation property."""

from __future__ import annotations

import sys

from hypothesis import given
from hypothesis import strategies as st

from rearank_cli.parse import answer_numbers, answer_span, parse_ranking


def test_clean_answer():
    perm, flags = parse_ranking("<think>x [9] y</think>\n<answer>[2] > [3] > [1]</answer>", 3)
    assert perm == [1, 2, 0]
    assert flags.clean and flags.answer_tag and flags.think_closed and not flags.truncated


def test_missing_duplicated_out_of_range():
    perm, flags = parse_ranking("<answer>[3] > [3] > [7] > [0]</answer>", 4)
    assert perm == [2, 0, 1, 3]
    assert (flags.duplicated, flags.out_of_range, flags.missing) == (1, 2, 3)
    assert not flags.clean


def test_answer_without_closing_then_think_split():
    # Step 1 keeps the whole text (no closing tag); step 2 then keeps what follows the last </think>.
    text = "<think>passage [4] is best</think><answer>[2] > [1]"
    assert answer_span(text) == "<answer>[2] > [1]"
    perm, flags = parse_ranking(text, 4)
    assert perm == [1, 0, 2, 3]
    assert flags.truncated and flags.answer_tag


def test_think_without_answer_uses_text_after_last_think():
    assert answer_span("<think>a</think> [1] <think>b</think> [2] > [1]") == " [2] > [1]"
    assert answer_span("<think>[3] still thinking") == "<think>[3] still thinking"
    perm, flags = parse_ranking("<think>[3] still thinking", 3)
    assert perm == [2, 0, 1] and flags.truncated


def test_first_answer_match_and_plain_text():
    assert answer_span("<answer>[1]</answer><answer>[2]</answer>") == "[1]"
    assert parse_ranking("[2] > [1]", 2)[0] == [1, 0]
    assert parse_ranking("no digits here", 3)[0] == [0, 1, 2]


def head(text: str, size: int = 20) -> list[int]:
    """The 1-based ids the parser placed before the ones the model left out."""
    perm, flags = parse_ranking(text, size)
    return [i + 1 for i in perm[: size - flags.missing]]


# Spec section 5, its examples (window of 20).
def test_spec_answer_cut_off_after_closed_think():
    assert head("<think>[5] best, then [2]</think>\n<answer>[9] > [1] > [3]") == [9, 1, 3]


def test_spec_think_inside_answer():
    assert head("<answer><think>[2]</think>[5] > [1]</answer>") == [5, 1]


def test_spec_cut_off_inside_think_leaks_digits():
    perm, flags = parse_ranking("<think>Passage [4] mentions 2019 and", 20)
    assert perm[0] == 3 and sorted(perm) == list(range(20))
    assert (flags.ids_found, flags.out_of_range, flags.missing) == (2, 1, 19)
    assert flags.truncated and not flags.think_closed


def test_spec_isdigit_tokens():
    assert answer_numbers("1\u00b2") == []  # one token, int() rejects it: skipped whole
    assert answer_numbers("\u0661\u0662") == [12]  # Arabic-Indic
    assert answer_numbers("\uff13") == [3]  # full-width
    assert head("<answer>[1\u00b2] > [\u0661\u0662] > [\uff13]</answer>") == [12, 3]


# Adversarial cases of our own.
def test_nested_answer_tags_take_first_closing():
    # The non-greedy match ends at the first </answer>; its content still holds the inner <answer>.
    assert answer_span("<answer>[1] <answer>[2]</answer> [3]</answer>") == "[1] <answer>[2]"
    assert head("<answer>[1] <answer>[2]</answer> [3]</answer>") == [1, 2]


def test_several_answer_blocks_first_counts():
    assert head("<think>t</think><answer>[4] > [2]</answer><answer>[1] > [3]</answer>") == [4, 2]
    assert head("<answer></answer><answer>[1]</answer>") == []


def test_upper_case_tags_are_plain_text():
    # Tags are case-sensitive: upper-case ones are not tags, every digit of the text counts.
    assert head("<THINK>[3]</THINK><ANSWER>[2] > [1]</ANSWER>") == [3, 2, 1]
    perm, flags = parse_ranking("<ANSWER>[2]</ANSWER>", 3)
    assert not flags.answer_tag and flags.truncated


def test_think_inside_answer_without_closing_think():
    assert head("<answer><think>[2] > [7]</answer>") == [2, 7]


def test_closing_think_without_opening_is_not_split():
    assert head("[6] reasoning</think><answer>[2]</answer>") == [2]
    assert head("[6] reasoning</think> [2]") == [6, 2]


def test_negative_and_decimal_numbers():
    # "-" and "." are not digits: -3 reads 3, 2.5 reads 2 and 5.
    assert answer_numbers("[-3] > [2.5]") == [3, 2, 5]
    assert head("<answer>[-3] > [2.5]</answer>", 5) == [3, 2, 5]


def test_huge_integers_are_out_of_range_or_skipped():
    big = "9" * 100
    perm, flags = parse_ranking(f"<answer>[{big}] > [2]</answer>", 3)
    assert perm == [1, 0, 2] and flags.out_of_range == 1
    limit = sys.get_int_max_str_digits()
    if limit:  # a token longer than int()'s limit is rejected, hence skipped whole
        perm, flags = parse_ranking(f"<answer>[{'1' * (limit + 1)}] > [2]</answer>", 3)
        assert perm == [1, 0, 2] and flags.ids_found == 1


def test_leading_zeros_and_adjacent_digits():
    assert answer_numbers("[03]>[1][2]") == [3, 1, 2]
    assert answer_numbers("[12]") == [12]


def test_other_digit_like_characters():
    assert answer_numbers("\u2460 [2]") == [2]  # circled one: isdigit() but int() rejects it
    assert answer_numbers("\u0969 \u09e8") == [3, 2]  # Devanagari three, Bengali two
    assert answer_numbers("\u00bd [4]") == [4]  # vulgar half: not isdigit(), a space


def test_empty_and_blank_text():
    for text in ("", "   ", "<answer></answer>", "<think></think>", "<answer>"):
        perm, flags = parse_ranking(text, 4)
        assert perm == [0, 1, 2, 3] and flags.ids_found == 0 and flags.missing == 4
    assert parse_ranking("", 0)[0] == []


@given(st.text(), st.integers(min_value=0, max_value=30))
def test_any_text_gives_permutation(text, size):
    perm, flags = parse_ranking(text, size)
    assert sorted(perm) == list(range(size))
    assert flags.missing <= size


@given(st.lists(st.integers(min_value=0, max_value=40), max_size=50), st.integers(min_value=1, max_value=25))
def test_any_id_list_gives_permutation(ids, size):
    text = "<answer>" + " > ".join(f"[{i}]" for i in ids) + "</answer>"
    perm, _ = parse_ranking(text, size)
    assert sorted(perm) == list(range(size))
    expected_head = []
    for i in ids:
        if 1 <= i <= size and i - 1 not in expected_head:
            expected_head.append(i - 1)
    assert perm[: len(expected_head)] == expected_head


TAGS = st.sampled_from(["<answer>", "</answer>", "<think>", "</think>", "[", "]", " > ", "\u00b2", "\uff13", "-", "."])


PIECES = st.one_of(TAGS, st.integers(min_value=0, max_value=30).map(str), st.text(max_size=3))


@given(st.lists(PIECES), st.integers(0, 25))
def test_tagged_text_gives_permutation(parts, size):
    perm, flags = parse_ranking("".join(parts), size)
    assert sorted(perm) == list(range(size))
    assert flags.ids_found == len(perm) - flags.missing + flags.duplicated + flags.out_of_range
