"""The REARANK reward (spec section 7), pure core: standard library only.

    reward = 0.8 * r_rank + 0.1 * r_format + 0.1 * r_list

- `r_rank = (r_rerank - r_init) / (r_best - r_init)`, 0 when r_best == r_init; r_rerank is the nDCG@10 of
  the sample reordered by the parsed answer (`parse.parse_ranking`, spec section 5). It can be negative.
- `r_format` = 1 when the whole response fully matches `<think>.*?</think>\\s*<answer>.*?</answer>` (DOTALL).
- `r_list` = 1 when the content of the first closed `<answer>…</answer>` contains `[digits]` items
  (`(\\[\\d+\\]\\s*>\\s*)*\\[\\d+\\]`, searched); a response without a closed `<answer>` gets 0.

Labels come from the qrels, never from a default: the label of each reranked doc is its qrels label
(0 when the query judged other docs but not this one), and the ideal DCG is over ALL judged docs of the
query, as in `augment`. A query missing from the qrels raises `MissingQrels`. The sample's stored
`r_init`/`r_best` are the baseline of the gain; `check_sample` verifies them (and the stored `labels`)
against the qrels so that a training run with the wrong qrels file fails up front.

Three entry points: `score` (one response, all components), the TRL reward functions `rank_reward`,
`format_reward`, `list_reward` (weights 0.8/0.1/0.1 via GRPOConfig.reward_weights, so the logs show each
component), and VeRL's `compute_score`. VeRL loads it through `rearank_cli/reward.py` (as
`pkg://rearank_cli.reward` or by file path), which re-exports what VeRL calls (see docs/verl.md).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from rearank_cli.errors import MissingQrels
from rearank_cli.metrics import dcg, ideal_dcg, ndcg
from rearank_cli.parse import ANSWER_RE, parse_ranking

WEIGHTS = {"rank": 0.8, "format": 0.1, "list": 0.1}
K = 10
TOLERANCE = 1e-6

FORMAT_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
LIST_RE = re.compile(r"(\[\d+\]\s*>\s*)*\[\d+\]")

QueryQrels = Mapping[str, int]


class RewardParts(NamedTuple):
    """The three components of one response's reward and their weighted sum.

    A NamedTuple, not a dataclass: `@dataclass` looks its module up in `sys.modules`, and VeRL >= 0.7
    executes a reward file by path without registering it there (AttributeError at load time).
    """

    rank: float
    format: float
    list: float
    r_rerank: float

    @property
    def total(self) -> float:
        """0.8 * rank + 0.1 * format + 0.1 * list."""
        return WEIGHTS["rank"] * self.rank + WEIGHTS["format"] * self.format + WEIGHTS["list"] * self.list

    def as_dict(self) -> dict[str, float]:
        """The components plus `total`."""
        return {**self._asdict(), "total": self.total}


def format_reward_value(text: str) -> float:
    """1.0 when the whole response is `<think>…</think>` then `<answer>…</answer>` (full match), else 0.0."""
    return 1.0 if FORMAT_RE.fullmatch(text) else 0.0


def list_reward_value(text: str) -> float:
    """1.0 when the first closed `<answer>` block contains a `[d] > [d]`-style list, else 0.0."""
    match = ANSWER_RE.search(text)
    return 1.0 if match and LIST_RE.search(match.group(1)) else 0.0


def query_qrels(qrels: Mapping[str, QueryQrels], qid: str) -> QueryQrels:
    """The judgements of `qid`, or `MissingQrels`."""
    judged = qrels.get(str(qid))
    if judged is None:
        raise MissingQrels(f"query {qid!r} has no judgements in the qrels")
    return judged


def labels_of(docids: Sequence[str], judged: QueryQrels) -> list[int]:
    """Qrels label of each doc (0 for a doc the query did not judge)."""
    return [int(judged.get(docid, 0)) for docid in docids]


def sample_bounds(docids: Sequence[str], judged: QueryQrels) -> tuple[float, float]:
    """(r_init, r_best) of a sample presented in `docids` order: nDCG@10 of that order and of its ideal order."""
    labels = labels_of(docids, judged)
    values = list(judged.values())
    return ndcg(labels, values, K), ndcg(sorted(labels, reverse=True), values, K)


def rank_gain(r_rerank: float, r_init: float, r_best: float) -> float:
    """Normalized nDCG gain `(r_rerank - r_init) / (r_best - r_init)`; 0 when r_best == r_init."""
    span = r_best - r_init
    if abs(span) <= 1e-12:
        return 0.0
    return (r_rerank - r_init) / span


def rerank_ndcg(text: str, docids: Sequence[str], judged: QueryQrels) -> float:
    """nDCG@10 of the sample reordered by the answer parsed from `text` (spec section 5)."""
    order, _ = parse_ranking(text, len(docids))
    return ndcg(labels_of([docids[i] for i in order], judged), list(judged.values()), K)


def score(
    text: str, docids: Sequence[str], judged: QueryQrels, r_init: float | None = None, r_best: float | None = None
) -> RewardParts:
    """All reward components of one response for a sample (r_init/r_best computed from qrels when None)."""
    labels = labels_of(docids, judged)
    return score_labels(text, labels, ideal_dcg(judged.values(), K), r_init, r_best)


def score_labels(
    text: str, labels: Sequence[int], idcg: float, r_init: float | None = None, r_best: float | None = None
) -> RewardParts:
    """All reward components from the sample's qrels labels (presented order) and the query's ideal DCG@10.

    The same numbers as `score`: `idcg` is the ideal DCG@10 over all judged docs of the query (> 0).
    """
    if not idcg > 0:
        raise MissingQrels(f"ideal DCG {idcg!r}: the query has no relevant judged doc")
    if r_init is None or r_best is None:
        r_init, r_best = dcg(labels, K) / idcg, dcg(sorted(labels, reverse=True), K) / idcg
    order, _ = parse_ranking(text, len(labels))
    r_rerank = dcg([labels[i] for i in order], K) / idcg
    return RewardParts(
        rank=rank_gain(r_rerank, r_init, r_best),
        format=format_reward_value(text),
        list=list_reward_value(text),
        r_rerank=r_rerank,
    )


def check_sample(row: Mapping[str, Any], qrels: Mapping[str, QueryQrels]) -> str | None:
    """Why a training row disagrees with the qrels (None when it agrees); raises MissingQrels for its query.

    Checks the stored `labels` (when present), `r_init` and `r_best` against values recomputed from the qrels.
    """
    judged = query_qrels(qrels, row["qid"])
    docids = row["docids"]
    if "labels" in row and list(row["labels"]) != labels_of(docids, judged):
        return "its labels differ from the qrels given with --qrels (another qrels file?)"
    r_init, r_best = sample_bounds(docids, judged)
    for name, value in (("r_init", r_init), ("r_best", r_best)):
        if not math.isclose(float(row[name]), value, abs_tol=TOLERANCE):
            return f"its {name} {float(row[name]):.6f} differs from {value:.6f} computed from the qrels"
    return None


# --- TRL reward functions -------------------------------------------------------------------------------
# GRPOTrainer calls each with `prompts`, `completions` and every other dataset column as a keyword list.


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string, or a conversational list of messages."""
    if isinstance(completion, str):
        return completion
    return "".join(message.get("content", "") or "" for message in completion)


def begun_answer(prompt: Any) -> str:
    """The content of a conversational prompt's last message when it is the assistant's (an answer the model
    continues, e.g. a `<think>` the family wrote for it), else ''."""
    if isinstance(prompt, list | tuple) and prompt and isinstance(prompt[-1], Mapping):
        last = prompt[-1]
        if last.get("role") == "assistant":
            return str(last.get("content") or "")
    return ""


def responses(completions: Sequence[Any], prompts: Sequence[Any] | None = None,
              prefixes: Sequence[str] | None = None) -> list[str]:
    """The whole answer of each completion, as the reranker's parser reads it: the begun answer, then what the
    model wrote. The begun answer is `prefixes`' (the `answer_prefix` column `rearank train` adds when it
    renders continued prompts as text) or the conversational prompt's last assistant message."""
    if prefixes is None:
        prefixes = [begun_answer(p) for p in prompts] if prompts is not None else [""] * len(completions)
    return [prefix + completion_text(c) for prefix, c in zip(prefixes, completions, strict=True)]


def rank_reward(
    completions: Sequence[Any],
    qid: Sequence[str],
    docids: Sequence[Sequence[str]],
    r_init: Sequence[float],
    r_best: Sequence[float],
    qrels: Mapping[str, QueryQrels],
    prompts: Sequence[Any] | None = None,
    answer_prefix: Sequence[str] | None = None,
    **_: Any,
) -> list[float]:
    """Normalized nDCG@10 gain of each completion (TRL reward function; bind `qrels` with functools.partial)."""
    rewards = []
    texts = responses(completions, prompts, answer_prefix)
    for text, q, ids, init, best in zip(texts, qid, docids, r_init, r_best, strict=True):
        rewards.append(rank_gain(rerank_ndcg(text, ids, query_qrels(qrels, q)), init, best))
    return rewards


def format_reward(completions: Sequence[Any], prompts: Sequence[Any] | None = None,
                  answer_prefix: Sequence[str] | None = None, **_: Any) -> list[float]:
    """`<think>…</think><answer>…</answer>` format reward of each completion (TRL reward function)."""
    return [format_reward_value(text) for text in responses(completions, prompts, answer_prefix)]


def list_reward(completions: Sequence[Any], prompts: Sequence[Any] | None = None,
                answer_prefix: Sequence[str] | None = None, **_: Any) -> list[float]:
    """`[d] > [d]` answer-list reward of each completion (TRL reward function)."""
    return [list_reward_value(text) for text in responses(completions, prompts, answer_prefix)]


# --- VeRL -----------------------------------------------------------------------------------------------


def _load(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


_QRELS_CACHE: dict[str, dict[str, dict[str, int]]] = {}


def _qrels_file(path: str) -> dict[str, dict[str, int]]:
    if path not in _QRELS_CACHE:
        from rearank_cli.formats.trec import read_qrels

        _QRELS_CACHE[path] = read_qrels(path)
    return _QRELS_CACHE[path]


def verl_judged(ground_truth: Mapping[str, Any], extra: Mapping[str, Any]) -> QueryQrels:
    """The query's judgements for VeRL when ground_truth has no `labels`/`idcg`: `ground_truth["qrels"]`
    ({docid: label} of all judged docs of the query), else the qrels file named by `extra_info["qrels_path"]`
    or `$REARANK_QRELS`; else MissingQrels."""
    inline = ground_truth.get("qrels")
    if inline is not None:
        judged = _load(inline)
        if not judged:
            raise MissingQrels(f"query {ground_truth.get('qid')!r}: ground_truth['qrels'] is empty")
        return {str(docid): int(label) for docid, label in judged.items()}
    path = extra.get("qrels_path") or os.environ.get("REARANK_QRELS")
    if not path:
        raise MissingQrels(
            "no qrels for the VeRL reward: ground_truth needs `labels` and `idcg` (as `rearank augment "
            "--format parquet` writes), or `qrels`, or name a qrels file in extra_info['qrels_path'] or "
            "$REARANK_QRELS"
        )
    qid = ground_truth.get("qid", extra.get("qid"))
    return query_qrels(_qrels_file(str(path)), str(qid))


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None
) -> dict[str, float]:
    """VeRL `custom_reward_function` entry point: the REARANK reward of one response.

    `ground_truth` (a dict or its JSON text) is what `rearank augment --format parquet` writes in
    `reward_model.ground_truth`: `labels` (qrels label of each presented doc), `idcg` (ideal DCG@10 over
    ALL judged docs of the query), `r_init`, `r_best`. Without `labels`/`idcg` the judgements come from
    `verl_judged` and the docids from `ground_truth["docids"]` or `extra_info["docids"]`. Returns a dict
    whose `score` is the weighted reward; VeRL logs the other keys (`rank`, `format`, `list`, `r_rerank`)
    as separate metrics.
    """
    del data_source
    truth = dict(_load(ground_truth) or {})
    extra = dict(_load(extra_info) or {})
    r_init = _optional_float(truth.get("r_init", extra.get("r_init")))
    r_best = _optional_float(truth.get("r_best", extra.get("r_best")))
    if truth.get("labels") is not None and truth.get("idcg") is not None:
        labels = [int(label) for label in _load(truth["labels"])]
        parts = score_labels(solution_str, labels, float(truth["idcg"]), r_init, r_best)
    else:
        docids = truth.get("docids", extra.get("docids"))
        if docids is None:
            raise MissingQrels("VeRL ground_truth has neither `labels`+`idcg` nor `docids`")
        parts = score(solution_str, [str(d) for d in _load(docids)], verl_judged(truth, extra), r_init, r_best)
    return {"score": parts.total, **{k: v for k, v in parts.as_dict().items() if k != "total"}}
