"""Benchmark: the continuous scheduler vs lock-step rounds on one vLLM engine, with heavy-tailed traces.

Reranks DL19 (43 queries x 100 BM25 candidates, REARANK prompt, window 20 / step 10: 9 windows per
query) with the `vllm` backend and a model (by default the tiny random Qwen2 of the tests, built offline).
Every window's generation length is drawn from a seeded lognormal (mean ~10x the minimum) and forced
with `ignore_eos`, keyed by (query, window number), so every mode generates exactly the same tokens.
Measured in one run, on one engine (prefix cache emptied before each mode):

- continuous: `rearank.rerank_queries` as `rearank rerank` runs it (a query's next window starts as soon
  as its previous one returns);
- lock-step: the same scheduler behind a barrier, window k of every query waits until all queries
  finished window k-1 (the authors' batch loop and most peers);
- critical path: the queries with the most tokens to generate, each run alone (its windows back to
  back): no schedule can finish before the worst of them;
- throughput bound: the same windows and lengths submitted with no dependencies between a query's
  windows (as many in flight as there are queries): no schedule can do the work faster;
- orchestration: the same 387 windows with a zero-latency backend (prompt build + parse + journal).

    .venv/bin/python bench/bench_scheduler.py [--queries 43] [--min-tokens 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rearank_cli.backends.base import Backend, Generation, Message, Request, Sampling  # noqa: E402
from rearank_cli.backends.vllm import VllmBackend  # noqa: E402
from rearank_cli.formats import read_candidates  # noqa: E402
from rearank_cli.prompts import PROMPTS  # noqa: E402
from rearank_cli.rerank import Journal, QueryInput, RerankSettings, load_queries, rerank_queries  # noqa: E402
from rearank_cli.rerank.records import JournalHeader, JournalSettings  # noqa: E402
from rearank_cli.rerank.strategies.sliding import schedule  # noqa: E402

REARANK = PROMPTS["rearank"]
CANDIDATES = ROOT / "sample_runs" / "dl19-bm25-top100.candidates.json.gz"


# ----------------------------------------------------------------------------------------------
# heavy-tailed generation lengths


@dataclasses.dataclass(frozen=True)
class Lengths:
    """Per-window max_tokens: `min_tokens * (1 + X)`, X ~ lognormal with mean `ratio - 1`, capped."""

    min_tokens: int = 64
    ratio: float = 10.0
    sigma: float = 1.0
    cap_ratio: float = 60.0
    seed: int = 0

    def draw(self, key: str, ordinal: int) -> int:
        """The length of the `ordinal`-th window of the query with routing key `key` (deterministic)."""
        rng = random.Random(f"{self.seed}:{key}:{ordinal}")
        mu = math.log(self.ratio - 1) - self.sigma**2 / 2
        tokens = self.min_tokens * (1 + rng.lognormvariate(mu, self.sigma))
        return int(min(tokens, self.min_tokens * self.cap_ratio))


class HeavyTail(Backend):
    """Bench-only wrapper: sets each request's max_tokens from `Lengths` and times every request."""

    name = "heavy-tail"

    def __init__(self, inner: VllmBackend, lengths: Lengths) -> None:
        self.inner = inner
        self.lengths = lengths
        self.context_length = inner.context_length
        self.calls: Counter = Counter()
        self.latency: dict[str, float] = defaultdict(float)

    def count_prompt_tokens(self, messages: list[Message]) -> int | None:
        return self.inner.count_prompt_tokens(messages)

    async def before(self, key: str, ordinal: int) -> None:
        """Hook for lock-step: wait before sending a request."""

    def after(self, key: str, ordinal: int) -> None:
        """Hook for lock-step: a request finished."""

    async def agenerate(self, request: Request) -> Generation:
        key = str(request.session)
        ordinal = self.calls[key]
        self.calls[key] += 1
        await self.before(key, ordinal)
        began = time.perf_counter()
        sampling = dataclasses.replace(request.sampling, max_tokens=self.lengths.draw(key, ordinal))
        generation = await self.inner.agenerate(dataclasses.replace(request, sampling=sampling))
        self.latency[key] += time.perf_counter() - began
        self.after(key, ordinal)
        return generation


class LockStep(HeavyTail):
    """Round k of every query starts only when all queries finished round k-1."""

    name = "lock-step"

    def __init__(self, inner: VllmBackend, lengths: Lengths, queries: int) -> None:
        super().__init__(inner, lengths)
        self.queries = queries
        self.finished: Counter = Counter()
        self.changed = asyncio.Condition()

    async def before(self, key: str, ordinal: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: ordinal == 0 or self.finished[ordinal - 1] >= self.queries)

    def after(self, key: str, ordinal: int) -> None:
        self.finished[ordinal] += 1

        async def notify() -> None:
            async with self.changed:
                self.changed.notify_all()

        asyncio.ensure_future(notify())


class ZeroLatency(Backend):
    """Answers every window at once with a complete, well-formed REARANK answer (reversed order)."""

    name = "zero-latency"

    async def agenerate(self, request: Request) -> Generation:
        size = request.window_size
        answer = " > ".join(f"[{i}]" for i in range(size, 0, -1))
        return Generation(f"<think>ok</think>\n<answer> {answer} </answer>", 1, 1)


# ----------------------------------------------------------------------------------------------
# runs


def load_dl19(queries: int, depth: int) -> list[QueryInput]:
    """The first `queries` DL19 queries with their top-`depth` candidates and texts."""
    candidates = read_candidates(str(CANDIDATES))
    run = {qid: hits for qid, hits in list(candidates.run.items())[:queries]}
    loaded = load_queries(run, candidates.topics, lambda wanted: {d: candidates.texts[d] for d in wanted},
                          depth=depth, prompt="rearank")
    return loaded.queries


async def timed(queries: list[QueryInput], backend: Backend, settings: RerankSettings,
                journal: Journal | None = None) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    result = await rerank_queries(queries, backend, settings, journal)
    return time.perf_counter() - began, result.stats.as_dict()


async def run_model_modes(args: argparse.Namespace, queries: list[QueryInput]) -> dict[str, Any]:
    settings = RerankSettings(depth=args.depth, sampling=Sampling(max_tokens=args.max_tokens),
                              max_inflight=args.max_inflight)
    lengths = Lengths(min_tokens=args.min_tokens, ratio=args.ratio, sigma=args.sigma, seed=args.seed)
    backend = VllmBackend(args.model, dtype="float32", enforce_eager=True, max_model_len=args.max_model_len,
                          recovery=False, ignore_eos=True, max_num_seqs=args.max_num_seqs)
    began = time.perf_counter()
    await backend.start()
    out: dict[str, Any] = {"engine_start_s": round(time.perf_counter() - began, 1), "backend": backend.describe()}

    # the lengths every mode will generate, per query (keys as the wrapper computes them)
    keys = {q.qid: q.qid for q in queries}  # the session of a query's requests
    count = {q.qid: len(schedule("fixed", min(len(q.hits), args.depth), settings.window, settings.step))
             for q in queries}
    plan = {qid: [lengths.draw(key, i) for i in range(count[qid])] for qid, key in keys.items()}
    drawn = [n for tokens in plan.values() for n in tokens]
    out["lengths"] = {"min": min(drawn), "mean": round(sum(drawn) / len(drawn), 1), "max": max(drawn),
                      "p50": sorted(drawn)[len(drawn) // 2], "p95": sorted(drawn)[int(len(drawn) * 0.95)]}

    # warm-up (first-forward costs), then an empty prefix cache before each mode
    await backend.agenerate(REARANK.request("warm up", ["x"] * 20, Sampling(max_tokens=4)))

    modes: dict[str, dict[str, Any]] = {}
    for repeat in range(args.repeats):  # interleaved, best wall per mode: a shared machine is noisy
        for name in args.modes:
            await backend.reset_prefix_cache()
            wrapper = (LockStep(backend, lengths, len(queries)) if name == "lock-step"
                       else HeavyTail(backend, lengths))
            wall, stats = await timed(queries, wrapper, settings)
            walls = modes.get(name, {}).get("walls_s", []) + [round(wall, 2)]
            if name not in modes or wall < modes[name]["wall_s"]:
                modes[name] = {"wall_s": round(wall, 2), "windows": stats["windows"]["generated"],
                               "completion_tokens": stats["tokens"]["session_completion"],
                               "prompt_tokens": stats["tokens"]["session_prompt"],
                               "windows_per_s": round(stats["windows"]["generated"] / wall, 3),
                               "tokens_per_s": round(stats["tokens"]["session_completion"] / wall, 1),
                               "worst_query_latency_sum_s": round(max(wrapper.latency.values()), 2)}
            modes[name]["walls_s"] = walls
            print(f"  {name} (repeat {repeat + 1}): {wall:.2f} s", file=sys.stderr, flush=True)
    out["modes"] = modes

    # critical path: the queries with the most tokens to generate, each alone
    worst = sorted(queries, key=lambda q: -sum(plan[q.qid]))[: args.critical_queries]
    alone = {}
    for query in worst:
        await backend.reset_prefix_cache()
        wall, _ = await timed([query], HeavyTail(backend, lengths), settings)
        alone[query.qid] = {"wall_s": round(wall, 2), "tokens": sum(plan[query.qid])}
        print(f"  alone {query.qid}: {alone[query.qid]}", file=sys.stderr, flush=True)
    out["critical_path"] = {"queries": alone, "bound_s": max(v["wall_s"] for v in alone.values())}

    # throughput bound: the same windows and lengths with no dependencies between a query's windows
    # (all prompts built on the first-stage order), as many in flight as the scheduler had queries
    if args.no_throughput_bound:
        out["prefix_cache"] = dict(backend.stats)
        await backend.close()
        return out
    await backend.reset_prefix_cache()
    gate = asyncio.Semaphore(min(len(queries), args.max_inflight))
    spans = {q.qid: schedule("fixed", min(len(q.hits), args.depth), settings.window, settings.step)
             for q in queries}

    async def one(query: QueryInput, ordinal: int, start: int, end: int) -> None:
        request = REARANK.request(query.query, [query.texts[d] for d, _ in query.hits[start:end]],
                                  Sampling(max_tokens=plan[query.qid][ordinal]), session=query.qid)
        async with gate:
            await backend.agenerate(request)

    began = time.perf_counter()
    await asyncio.gather(*(one(q, k, s, e) for k in range(max(map(len, spans.values())))
                           for q in queries if k < len(spans[q.qid]) for s, e in [spans[q.qid][k]]))
    out["throughput_bound_s"] = round(time.perf_counter() - began, 2)
    print(f"  no dependencies: {out['throughput_bound_s']} s", file=sys.stderr, flush=True)
    out["prefix_cache"] = dict(backend.stats)
    await backend.close()
    return out


async def run_orchestration(queries: list[QueryInput], depth: int, repeats: int,
                            model: str | None) -> dict[str, Any]:
    settings = RerankSettings(depth=depth, max_inflight=64)
    result: dict[str, Any] = {}
    if model is not None:  # the vLLM backend's own share: chat template + tokenization of each prompt
        backend = VllmBackend(model)
        chats = [REARANK.messages(q.query, [q.texts[d] for d, _ in q.hits[start:end]])
                 for q in queries for start, end in schedule("fixed", min(len(q.hits), depth))]
        backend.prompt_ids(chats[0])
        began = time.perf_counter()
        for chat in chats:
            backend.prompt_ids(chat)
        result["vllm_prompt_render_ms_per_window"] = round((time.perf_counter() - began) / len(chats) * 1000, 3)
    for fsync in (True, False):
        best = math.inf
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                journal = Journal(os.path.join(tmp, "trace.jsonl"), JournalHeader(JournalSettings()), False,
                                  fsync=fsync)
                journal.open()
                wall, stats = await timed(queries, ZeroLatency(), settings, journal)
                journal.close()
            best = min(best, wall / stats["windows"]["generated"])
        result["ms_per_window" + ("" if fsync else "_no_fsync")] = round(best * 1000, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model dir (default: build the tiny test model in a temp dir)")
    parser.add_argument("--queries", type=int, default=43)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--min-tokens", type=int, default=64, help="REARANK-like: mean ~640 tokens")
    parser.add_argument("--ratio", type=float, default=10.0, help="mean length / min length")
    parser.add_argument("--sigma", type=float, default=1.0, help="lognormal sigma (tail weight)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-inflight", type=int, default=64)
    parser.add_argument("--max-num-seqs", type=int, default=None)
    parser.add_argument("--max-model-len", type=int, default=16384)
    parser.add_argument("--critical-queries", type=int, default=2, help="heaviest queries timed alone")
    parser.add_argument("--modes", nargs="+", default=["lock-step", "continuous"])
    parser.add_argument("--no-throughput-bound", action="store_true", help="skip the no-dependency run")
    parser.add_argument("--repeats", type=int, default=1, help="run the modes N times, interleaved; best wall")
    parser.add_argument("--skip-model", action="store_true", help="only the orchestration overhead")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    args.max_tokens = int(args.min_tokens * Lengths().cap_ratio)

    queries = load_dl19(args.queries, args.depth)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}",
        "queries": len(queries), "depth": args.depth,
        "settings": {k: v for k, v in vars(args).items() if k not in ("json",)},
    }
    if args.model is None:
        from tests.tiny_model import build_tiny_model

        args.model = str(build_tiny_model(Path(tempfile.mkdtemp(prefix="tiny-qwen2-"))))
    results["settings"]["model"] = args.model
    print("orchestration (zero-latency backend) ...", file=sys.stderr, flush=True)
    results["orchestration"] = asyncio.run(run_orchestration(queries, args.depth, 3, args.model))
    print(f"  {results['orchestration']}", file=sys.stderr, flush=True)
    if not args.skip_model:
        print("model runs ...", file=sys.stderr, flush=True)
        results.update(asyncio.run(run_model_modes(args, queries)))
        modes = results["modes"]
        if "continuous" in modes:
            cont = modes["continuous"]["wall_s"]
            results["ratios"] = {
                "continuous_vs_lockstep": round(cont / modes["lock-step"]["wall_s"], 3) if "lock-step" in modes
                else None,
                "continuous_vs_critical_path": round(cont / results["critical_path"]["bound_s"], 3),
                "continuous_vs_throughput_bound": round(cont / results["throughput_bound_s"], 3)
                if "throughput_bound_s" in results else None,
            }
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


def report(results: dict[str, Any]) -> None:
    """Print the numbers that go into docs/benchmarks.md."""
    print(f"machine: {results['machine']}")
    print(f"queries: {results['queries']} x depth {results['depth']}")
    orch = results["orchestration"]
    print(f"orchestration: {orch['ms_per_window']:.3f} ms/window (journal fsync'd), "
          f"{orch['ms_per_window_no_fsync']:.3f} ms/window without fsync")
    if "vllm_prompt_render_ms_per_window" in orch:
        print(f"vllm backend prompt rendering (chat template + tokenize): "
              f"{orch['vllm_prompt_render_ms_per_window']:.3f} ms/window")
    if "modes" not in results:
        return
    print(f"lengths (max_tokens per window): {results['lengths']}")
    for name, mode in results["modes"].items():
        print(f"{name:>10}: {mode['wall_s']:8.1f} s  {mode['windows_per_s']:.3f} windows/s  "
              f"{mode['tokens_per_s']:.1f} generated tokens/s  ({mode['windows']} windows, "
              f"{mode['completion_tokens']} tokens; walls {mode['walls_s']})")
    print(f"critical path bound: {results['critical_path']['bound_s']:.1f} s")
    if "throughput_bound_s" in results:
        print(f"throughput bound (same windows, no dependencies): {results['throughput_bound_s']:.1f} s")
    for name, value in (results.get("ratios") or {}).items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
