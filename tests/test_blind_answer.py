"""The best blind answer of augment's samples (`augment.blind`) against every permutation scored by the reward."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from rearank_cli.augment.blind import BlindAnswer, Sample, order_reward, verdict_of
from rearank_cli.augment.sampling import Settings, sample_scores, summary_lines
from rearank_cli.formats.trec import read_qrels
from rearank_cli.jobs.augment import augment
from rearank_cli.metrics import ideal_dcg
from rearank_cli.train.reward import score, score_labels
from tests.test_augment import read_rows

ROOT = Path(__file__).resolve().parents[1]


def answer(order) -> str:
    return "<think>x</think><answer>" + " > ".join(f"[{i + 1}]" for i in order) + "</answer>"


def random_samples(rng: random.Random, count: int, sizes=(4,)) -> list[Sample]:
    """Samples as augment keeps them: judged labels of a query, a subset of them shown in some order."""
    samples = []
    while len(samples) < count:
        judged = [rng.choice((0, 0, 1, 2, 3)) for _ in range(rng.randint(4, 12))]
        size = rng.choice(sizes)
        labels = rng.sample(judged, min(size, len(judged)))
        if not any(labels):
            continue
        r_init, r_best = sample_scores(labels, judged)
        samples.append(Sample(tuple(labels), ideal_dcg(judged), r_init, r_best))
    return samples


def reward_of(order, samples) -> float:
    """Mean ranking reward of answering `order` everywhere, through the reward's own parser."""
    text = answer(order)
    return sum(score_labels(text, s.labels, s.idcg, s.r_init, s.r_best).rank for s in samples) / len(samples)


def collect(samples) -> BlindAnswer:
    blind = BlindAnswer()
    for s in samples:
        blind.add(s.labels, s.idcg, s.r_init, s.r_best)
    return blind


@pytest.mark.parametrize("seed", range(6))
def test_the_best_order_beats_every_permutation(seed):
    samples = random_samples(random.Random(seed), 40)
    verdict = collect(samples).verdict()
    best = max(reward_of(order, samples) for order in itertools.permutations(range(4)))
    assert verdict.mean_rank_reward == pytest.approx(best, abs=1e-12)
    assert reward_of(verdict.order, samples) == pytest.approx(verdict.mean_rank_reward, abs=1e-12)
    rewards = [order_reward(verdict.order, s) for s in samples]
    assert (verdict.gains, verdict.losses, verdict.samples) == (
        sum(r > 0 for r in rewards), sum(r < 0 for r in rewards), 40)


def test_shorter_windows_are_scored_as_the_parser_reads_them():
    """A 3-passage window answered with a 4-passage order: [4] is ignored, as `parse_ranking` ignores it."""
    rng = random.Random(7)
    samples = random_samples(rng, 30, sizes=(3, 4))
    for order in itertools.permutations(range(4)):
        for s in samples:
            assert order_reward(order, s) == pytest.approx(
                score_labels(answer(order), s.labels, s.idcg, s.r_init, s.r_best).rank, abs=1e-12)


def test_ideal_windows_leave_the_window_order():
    blind = BlindAnswer()
    blind.add([3, 1, 0], ideal_dcg([3, 1]), 1.0, 1.0)
    verdict = blind.verdict()
    assert verdict.order == (0, 1, 2) and verdict.answer == "[1] > [2] > [3]"
    assert (verdict.mean_rank_reward, verdict.gains, verdict.losses) == (0.0, 0, 0)
    assert BlindAnswer().verdict() is None


def dl19(tmp_path, **settings):
    out = tmp_path / "train.jsonl"
    summary = augment(str(ROOT / "sample_runs/dl19-bm25-top100.trec"), str(ROOT / "sample_runs/dl19-qrels.txt"),
                      str(out), Settings(samples_per_query=8, window=5, depth=20, **settings),
                      candidates_path=str(ROOT / "sample_runs/dl19-bm25-top100.candidates.json.gz"))
    return read_rows(out), summary


def brute_force(rows, qrels) -> tuple[float, tuple[int, ...]]:
    best = (float("-inf"), ())
    for order in itertools.permutations(range(5)):
        text = answer(order)
        mean = sum(score(text, r["docids"], qrels[r["qid"]], r["r_init"], r["r_best"]).rank for r in rows) / len(rows)
        best = max(best, (mean, order), key=lambda pair: pair[0])
    return best


def test_dl19_samples_with_and_without_a_headroom_filter(tmp_path):
    """On DL19's windows the blind answer earns little; keep only windows with headroom and it earns a lot
    (by demoting the first passage), and the summary warns."""
    qrels = read_qrels(str(ROOT / "sample_runs/dl19-qrels.txt"))
    (tmp_path / "all").mkdir()
    (tmp_path / "filtered").mkdir()
    rows, summary = dl19(tmp_path / "all")
    verdict = summary.to_json()["blind_answer"]
    mean, order = brute_force(rows, qrels)
    assert verdict["mean_rank_reward"] == pytest.approx(mean, abs=1e-9) and verdict["samples"] == len(rows)
    assert verdict["mean_rank_reward"] < 0.1 and verdict["answer"].startswith("[1] > [2]")
    assert verdict_of(rows, qrels).to_json() == verdict  # what `rearank train` reports from the same rows
    settings = Settings(samples_per_query=8, window=5, depth=20, min_headroom=0.05)
    rows, summary = dl19(tmp_path / "filtered", min_headroom=0.05)
    verdict = summary.to_json()["blind_answer"]
    mean, order = brute_force(rows, qrels)
    assert verdict["mean_rank_reward"] == pytest.approx(mean, abs=1e-9)
    assert verdict["mean_rank_reward"] > 0.1
    assert not verdict["answer"].startswith("[1]")
    warned = [line for line in summary_lines(summary, settings) if "best blind answer" in line]
    assert len(warned) == 1 and verdict["answer"] in warned[0] and "WARNING" in warned[0]
