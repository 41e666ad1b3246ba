"""The answer parser of spec section 5, and its permutation property."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rearank_cli.parse import answer_span, parse_ranking


def test_clean_answer():
    perm, flags = parse_ranking("<think>x [9] y</think>\n<answer>[2] > [3] > [1]</answer>", 3)
    assert perm == [1, 2, 0]
    assert flags.clean and flags.answer_tag and flags.think_closed and not flags.truncated


def test_missing_duplicated_out_of_range():
    perm, flags = parse_ranking("<answer>[3] > [3] > [7] > [0]</answer>", 4)
    assert perm == [2, 0, 1, 3]
    assert (flags.duplicated, flags.out_of_range, flags.missing) == (1, 2, 3)
    assert not flags.clean


def test_answer_without_closing_keeps_whole_text():
    text = "<think>passage [4] is best</think><answer>[2] > [1]"
    assert answer_span(text) == text
    perm, flags = parse_ranking(text, 4)
    assert perm == [3, 1, 0, 2]
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
