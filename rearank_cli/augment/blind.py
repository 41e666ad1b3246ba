"""The best blind answer of a set of training samples: one order of window positions, the same in every
window, that earns the most ranking reward without reading a passage.

The ranking reward of an order on a sample is `(r_rerank - r_init) / (r_best - r_init)` (0 on a sample
already in its ideal order), and `r_rerank` is a DCG with linear gain, so the mean over samples of one
window size is linear in the order: position `p` placed at rank `k` adds `weight[p] * discount[k]`, where
`weight[p]` is the sum over samples of `label[p] / (idcg * (r_best - r_init))`. Sorting the positions by
weight (ties keep the window's order) therefore gives the best order exactly (rearrangement inequality),
in time linear in the samples (positions that land below rank 10 keep the window's order: there no order
earns more). The window's own order scores 0 on every sample, so on samples of one window size the best
blind answer scores at least 0 (with several sizes, the order is found on the commonest and scored on
all); when it scores well above 0, the samples pay a model for answering it everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rearank_cli.metrics import dcg, ideal_dcg
from rearank_cli.train.reward import K, labels_of, rank_gain

#: the mean ranking reward of the best blind answer from which the summary line warns
WARNING = 0.1


@dataclass(frozen=True)
class Sample:
    """What the ranking reward of a sample depends on: its labels in presented order and its bounds."""

    labels: tuple[int, ...]
    idcg: float
    r_init: float
    r_best: float


@dataclass(frozen=True)
class Verdict:
    """The best blind answer and how it fares on the samples."""

    order: tuple[int, ...]
    mean_rank_reward: float
    gains: int
    losses: int
    samples: int

    @property
    def answer(self) -> str:
        """The order as an answer, `[1] > [3] > ...` (1-based)."""
        return " > ".join(f"[{position + 1}]" for position in self.order)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict for the augment summary."""
        return {"answer": self.answer, "mean_rank_reward": self.mean_rank_reward,
                "gains": self.gains, "losses": self.losses, "samples": self.samples}


@dataclass
class BlindAnswer:
    """Collects samples (`add`) and finds their best blind answer (`verdict`)."""

    samples: list[Sample] = field(default_factory=list)

    def add(self, labels: Sequence[int], idcg: float, r_init: float, r_best: float) -> None:
        """Record one kept sample."""
        self.samples.append(Sample(tuple(labels), idcg, r_init, r_best))

    def verdict(self) -> Verdict | None:
        """The best order for the commonest window size, scored on every sample; None without samples."""
        if not self.samples:
            return None
        sizes = [len(sample.labels) for sample in self.samples]
        size = max(set(sizes), key=lambda n: (sizes.count(n), n))
        order = best_order([sample for sample in self.samples if len(sample.labels) == size], size)
        rewards = [order_reward(order, sample) for sample in self.samples]
        return Verdict(order, sum(rewards) / len(rewards), sum(r > 0 for r in rewards),
                       sum(r < 0 for r in rewards), len(rewards))


def best_order(samples: Sequence[Sample], size: int) -> tuple[int, ...]:
    """The order of `size` positions with the highest mean ranking reward over `samples` (all of that size)."""
    weights = [0.0] * size
    for sample in samples:
        span = sample.r_best - sample.r_init
        if abs(span) <= 1e-12:
            continue
        for position, label in enumerate(sample.labels):
            weights[position] += max(label, 0) / (sample.idcg * span)
    ranked = sorted(range(size), key=lambda position: -weights[position])
    return (*ranked[:K], *sorted(ranked[K:]))  # below rank K no order earns more: keep the window's


def order_reward(order: Sequence[int], sample: Sample) -> float:
    """The ranking reward of answering `order` on `sample`; positions beyond its window are left out."""
    kept = [position for position in order if position < len(sample.labels)]
    kept += [position for position in range(len(sample.labels)) if position not in kept]
    r_rerank = dcg([sample.labels[position] for position in kept], K) / sample.idcg
    return rank_gain(r_rerank, sample.r_init, sample.r_best)


def verdict_of(rows: Iterable[Mapping[str, Any]], qrels: Mapping[str, Mapping[str, int]]) -> Verdict | None:
    """The best blind answer of augment rows (`qid`, `docids`, `r_init`, `r_best`), labels from `qrels`."""
    blind = BlindAnswer()
    for row in rows:
        judged = qrels[str(row["qid"])]
        blind.add(labels_of(row["docids"], judged), ideal_dcg(judged.values(), K), float(row["r_init"]),
                  float(row["r_best"]))
    return blind.verdict()


def blind_line(verdict: Verdict) -> str:
    """One line on the best blind answer, with a warning when the samples pay for it."""
    head = "best blind answer (one order in every window, no passage read): "
    if list(verdict.order) == sorted(verdict.order):
        return head + "the window's own order (ranking reward 0; no other order earns more)"
    line = (f"{head}{verdict.answer}, mean ranking reward {verdict.mean_rank_reward:+.4f}, gains on "
            f"{verdict.gains} and loses on {verdict.losses} of {verdict.samples} samples (the window's own "
            "order: 0)")
    if verdict.mean_rank_reward >= WARNING:
        line += ("; WARNING: these samples pay a model for answering that everywhere (a filter such as "
                 "--min-headroom may have removed the windows that punish it)")
    return line
