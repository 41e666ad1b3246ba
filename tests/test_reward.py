"""The REARANK reward (spec section 7), checked against nDCG values computed by hand."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rearank_cli.train import reward
from rearank_cli.train.reward import MissingQrels, check_sample, compute_score, score
from tests.conftest import ROOT

# One query: d1..d3 and dX relevant, d4/dY judged non-relevant, dZ unjudged. dX is not in the sample,
# so the sample's ideal nDCG is below 1.
QRELS = {"q1": {"d1": 3, "d2": 2, "d3": 1, "d4": 0, "dX": 2, "dY": 0}}
DOCIDS = ["d4", "d3", "d2", "d1", "dZ"]  # presented order; labels 0 1 2 3 0


def log2(x: int) -> float:
    return math.log2(x)


# By hand: discount of rank r (1-based) is log2(r + 1).
IDCG = 3 / log2(2) + 2 / log2(3) + 2 / log2(4) + 1 / log2(5)  # all judged labels 3 2 2 1
R_INIT = (1 / log2(3) + 2 / log2(4) + 3 / log2(5)) / IDCG  # 0 1 2 3 0
R_BEST = (3 / log2(2) + 2 / log2(3) + 1 / log2(4)) / IDCG  # 3 2 1 0 0


def gain(r_rerank: float) -> float:
    return (r_rerank - R_INIT) / (R_BEST - R_INIT)


def test_hand_values_are_what_we_think():
    assert IDCG == pytest.approx(5.69254, abs=1e-5)
    assert R_INIT == pytest.approx(0.51347, abs=1e-5)
    assert R_BEST == pytest.approx(0.83651, abs=1e-5)
    assert reward.sample_bounds(DOCIDS, QRELS["q1"]) == pytest.approx((R_INIT, R_BEST))


def test_ideal_answer_gets_full_reward():
    text = "<think>[4] is the best, then [3].</think>\n<answer>[4] > [3] > [2] > [1] > [5]</answer>"
    parts = score(text, DOCIDS, QRELS["q1"], R_INIT, R_BEST)
    assert parts.r_rerank == pytest.approx(R_BEST)
    assert (parts.rank, parts.format, parts.list) == (pytest.approx(1.0), 1.0, 1.0)
    assert parts.total == pytest.approx(1.0)


def test_reversed_answer():
    # Reverse of the presented order: labels 0 3 2 1 0.
    text = "<think>x</think><answer>[5] > [4] > [3] > [2] > [1]</answer>"
    parts = score(text, DOCIDS, QRELS["q1"], R_INIT, R_BEST)
    expected = (3 / log2(3) + 2 / log2(4) + 1 / log2(5)) / IDCG
    assert parts.r_rerank == pytest.approx(expected)
    assert parts.rank == pytest.approx(gain(expected))
    assert parts.rank == pytest.approx(0.2178, abs=1e-4)
    assert parts.total == pytest.approx(0.8 * gain(expected) + 0.2)


def test_worse_than_initial_is_negative():
    # labels 0 0 1 2 3: relevant docs pushed down.
    text = "<think>x</think> <answer>[1] > [5] > [2] > [3] > [4]</answer>"
    parts = score(text, DOCIDS, QRELS["q1"], R_INIT, R_BEST)
    expected = (1 / log2(4) + 2 / log2(5) + 3 / log2(6)) / IDCG
    assert parts.rank == pytest.approx(gain(expected))
    assert parts.rank < 0
    assert parts.total == pytest.approx(0.8 * gain(expected) + 0.2)


def test_unparseable_answer_keeps_initial_order():
    parts = score("I cannot rank these passages.", DOCIDS, QRELS["q1"], R_INIT, R_BEST)
    assert parts.r_rerank == pytest.approx(R_INIT)
    assert (parts.rank, parts.format, parts.list, parts.total) == (0.0, 0.0, 0.0, 0.0)


def test_truncated_reasoning_leaks_digits():
    # No </think> and no <answer>: the whole text is parsed; ids 2, 5, 4 then the rest -> labels 1 0 3 0 2.
    text = "<think>Passage [2] is about the topic, [5] less so, and [4] is"
    parts = score(text, DOCIDS, QRELS["q1"], R_INIT, R_BEST)
    expected = (1 / log2(2) + 3 / log2(4) + 2 / log2(6)) / IDCG
    assert parts.r_rerank == pytest.approx(expected)
    assert (parts.format, parts.list) == (0.0, 0.0)
    assert parts.total == pytest.approx(0.8 * gain(expected))


def test_truncated_answer_has_no_list_reward():
    # <answer> without </answer>: the text after </think> is parsed (ids 4, 3), no format or list reward.
    text = "<think>ok</think><answer>[4] > [3] >"
    parts = score(text, DOCIDS, QRELS["q1"], R_INIT, R_BEST)
    expected = (3 / log2(2) + 2 / log2(3) + 1 / log2(5)) / IDCG  # labels 3 2 0 1 0
    assert parts.r_rerank == pytest.approx(expected)
    assert (parts.format, parts.list) == (0.0, 0.0)


def test_reasoning_before_a_cut_off_answer_is_not_read():
    # Spec section 5: the </think> split runs after the <answer> step, so [1] and [5] of the closed
    # reasoning do not count: ids 4, 3 then the rest -> labels 3 2 0 1 0 (the same order as above),
    # where reading the reasoning too would give ids 1, 5, 4, 3 -> labels 0 0 3 2 1.
    text = "<think>[1] best, then [5]</think>\n<answer>[4] > [3] >"
    parts = score(text, DOCIDS, QRELS["q1"], R_INIT, R_BEST)
    assert parts.r_rerank == pytest.approx((3 / log2(2) + 2 / log2(3) + 1 / log2(5)) / IDCG)
    assert (parts.format, parts.list) == (0.0, 0.0)


def test_partially_correct_answer():
    # [4] > [2] > [3], then the missing [1], [5]: labels 3 1 2 0 0.
    text = "<think>\nd1 answers it.\n</think>\n<answer> [4] > [2] > [3] </answer>"
    parts = score(text, DOCIDS, QRELS["q1"], R_INIT, R_BEST)
    expected = (3 / log2(2) + 1 / log2(3) + 2 / log2(4)) / IDCG
    assert parts.rank == pytest.approx(gain(expected))
    assert parts.rank == pytest.approx(0.9288, abs=1e-4)
    assert parts.total == pytest.approx(0.8 * gain(expected) + 0.1 + 0.1)


def test_no_gain_when_best_equals_init():
    docids = ["d1", "d2", "d3"]  # already ideal
    r_init, r_best = reward.sample_bounds(docids, QRELS["q1"])
    assert r_init == r_best
    for text in ("<answer>[3] > [2] > [1]</answer>", "<answer>[1] > [2] > [3]</answer>", "nothing"):
        assert score(text, docids, QRELS["q1"], r_init, r_best).rank == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a</think><answer>[1]</answer>", 1.0),
        ("<think>a\nb</think>\n\n<answer>\n[2] > [1]\n</answer>", 1.0),
        (" <think>a</think><answer>[1]</answer>", 0.0),  # full match: nothing before
        ("<think>a</think><answer>[1]</answer> done", 0.0),  # nor after
        ("<answer>[1]</answer>", 0.0),
        ("<think>a</think> text <answer>[1]</answer>", 0.0),
    ],
)
def test_format_component(text, expected):
    assert reward.format_reward_value(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>[3] > [1]</answer>", 1.0),
        ("<answer>the best is [3]</answer>", 1.0),
        ("<answer>3 > 1 > 2</answer>", 0.0),
        ("[3] > [1]", 0.0),  # no <answer>
        ("<answer>[3] > [1]", 0.0),  # not closed
        ("<answer>none</answer> <answer>[1]</answer>", 0.0),  # the first answer counts
    ],
)
def test_list_component(text, expected):
    assert reward.list_reward_value(text) == expected


def test_missing_qrels_raise():
    with pytest.raises(MissingQrels):
        reward.rank_reward(["<answer>[1]</answer>"], qid=["q9"], docids=[DOCIDS], r_init=[0.5], r_best=[0.8],
                           qrels=QRELS)
    with pytest.raises(MissingQrels):
        check_sample({"qid": "q9", "docids": DOCIDS, "r_init": 0.5, "r_best": 0.8}, QRELS)
    with pytest.raises(MissingQrels):
        compute_score("rearank", "<answer>[1]</answer>", {"docids": DOCIDS}, {})
    with pytest.raises(MissingQrels):
        compute_score("rearank", "<answer>[1]</answer>", {"labels": [0, 0], "idcg": 0.0}, {})


def test_check_sample_catches_other_qrels():
    row = {"qid": "q1", "docids": DOCIDS, "labels": [0, 1, 2, 3, 0], "r_init": R_INIT, "r_best": R_BEST}
    assert check_sample(row, QRELS) is None
    assert "labels" in check_sample({**row, "labels": [0, 1, 2, 3, 1]}, QRELS)
    assert "r_init" in check_sample({**row, "r_init": R_INIT + 0.01}, QRELS)
    other = {"q1": {**QRELS["q1"], "dX": 3}}  # a different IDCG
    assert "r_init" in check_sample({k: v for k, v in row.items() if k != "labels"}, other)


def test_trl_reward_functions_read_conversational_completions():
    texts = ["<think>x</think><answer>[4] > [3] > [2] > [1]</answer>", "no answer"]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    columns = {"qid": ["q1", "q1"], "docids": [DOCIDS, DOCIDS], "r_init": [R_INIT] * 2, "r_best": [R_BEST] * 2}
    assert reward.rank_reward(completions, qrels=QRELS, **columns, labels=[[0]] * 2) == pytest.approx([1.0, 0.0])
    assert reward.format_reward(completions, **columns) == [1.0, 0.0]
    assert reward.list_reward(completions, **columns) == [1.0, 0.0]


def test_verl_compute_score_with_augment_ground_truth(tmp_path, monkeypatch):
    text = "<think>x</think>\n<answer>[4] > [2] > [3]</answer>"
    expected = score(text, DOCIDS, QRELS["q1"], R_INIT, R_BEST)
    truth = {"labels": [0, 1, 2, 3, 0], "r_init": R_INIT, "r_best": R_BEST, "idcg": IDCG}
    result = compute_score("rearank", text, truth, {"qid": "q1", "docids": DOCIDS})
    assert result["score"] == pytest.approx(expected.total)
    assert result["rank"] == pytest.approx(expected.rank)
    assert (result["format"], result["list"]) == (1.0, 1.0)
    assert compute_score("rearank", text, json.dumps(truth))["score"] == pytest.approx(expected.total)
    # Judgements inline, or from a qrels file named in $REARANK_QRELS; r_init/r_best computed when absent.
    inline = compute_score("rearank", text, {"docids": DOCIDS, "qrels": QRELS["q1"]})
    assert inline["score"] == pytest.approx(expected.total)
    qrels_file = tmp_path / "qrels.txt"
    qrels_file.write_text("".join(f"q1 0 {d} {rel}\n" for d, rel in QRELS["q1"].items()))
    monkeypatch.setenv("REARANK_QRELS", str(qrels_file))
    from_file = compute_score("rearank", text, {"qid": "q1"}, {"docids": DOCIDS})
    assert from_file["score"] == pytest.approx(expected.total)
    with pytest.raises(MissingQrels):
        compute_score("rearank", text, {"qid": "q2"}, {"docids": DOCIDS})


@given(st.permutations(range(5)), st.booleans())
def test_any_permutation_is_bounded_and_consistent(order, wrap):
    answer = " > ".join(f"[{i + 1}]" for i in order)
    text = f"<think>t</think><answer>{answer}</answer>" if wrap else answer
    parts = score(text, DOCIDS, QRELS["q1"], R_INIT, R_BEST)
    assert gain(0.0) - 1e-9 <= parts.rank <= 1.0 + 1e-9
    assert parts.format == parts.list == float(wrap)
    truth = {"labels": [0, 1, 2, 3, 0], "idcg": IDCG, "r_init": R_INIT, "r_best": R_BEST}
    assert compute_score("rearank", text, truth)["score"] == pytest.approx(parts.total)


def test_verl_reward_on_augment_parquet_matches_the_qrels_reward(cli, samples, tmp_path):
    """`rearank augment --format parquet` on DL19, then compute_score on each row as VeRL would call it."""
    import random

    pq = pytest.importorskip("pyarrow.parquet")
    from rearank_cli.formats import read_qrels
    from tests.conftest import augment_parquet

    out = augment_parquet(tmp_path / "train.parquet")
    qrels = read_qrels(str(samples / "dl19-qrels.txt"))
    rng = random.Random(0)
    rows = pq.read_table(out).to_pylist()
    assert rows
    for row in rows:
        extra = row["extra_info"]
        order = list(range(len(extra["docids"])))
        rng.shuffle(order)
        text = "<think>t</think><answer>" + " > ".join(f"[{i + 1}]" for i in order) + "</answer>"
        verl = compute_score(row["data_source"], text, row["reward_model"]["ground_truth"], extra)
        ours = score(text, extra["docids"], qrels[extra["qid"]], extra["r_init"], extra["r_best"])
        assert verl["score"] == pytest.approx(ours.total)
        assert verl["rank"] == pytest.approx(ours.rank)


def test_reward_file_loads_by_path_without_rearank_installed(tmp_path):
    """VeRL executes `rearank_cli/reward.py` by path under a name of its own, without a `sys.modules` entry,
    perhaps where rearank is not installed (`-S`: no site-packages); the file finds its own checkout and
    hands over `rearank_cli.train.reward.compute_score`."""
    file = str(ROOT / "rearank_cli" / "reward.py")
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('custom_module_1', {file!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "from rearank_cli.train import reward\n"
        "truth = {'labels': [0, 1], 'idcg': 1.0, 'r_init': 0.6309297535714575, 'r_best': 1.0}\n"
        "result = module.compute_score('x', '<think>a</think><answer>[2] > [1]</answer>', truth)\n"
        "print(json.dumps([module.compute_score is reward.compute_score, reward.__file__, result]))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, check=True)
    same, path, result = json.loads(done.stdout)
    assert same and Path(path) == ROOT / "rearank_cli" / "train" / "reward.py"
    assert result == {"score": 1.0, "rank": 1.0, "format": 1.0, "list": 1.0, "r_rerank": 1.0}
