"""Benchmark: the hf backend's dynamic batching of concurrent windows vs one window at a time.

Both configurations run the same continuous scheduler (`rerank_queries`) on the same DL19 windows with
the same model in the same process; the baseline is `--batch-size 1 --max-inflight 1`. Prints windows/s
and the ratio. The model is the tiny offline Qwen2 of the tests (its REARANK windows are ~6,000 prompt
tokens with a 512-token vocabulary), or any model given with --model.

    python bench/bench_rerank_hf.py [--queries 16] [--max-tokens 32] [--batch-size 8] [--model PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rearank_cli.backends.base import Sampling  # noqa: E402
from rearank_cli.backends.hf import HfBackend  # noqa: E402
from rearank_cli.formats import read_candidates  # noqa: E402
from rearank_cli.rerank import RerankSettings, load_queries, rerank_queries  # noqa: E402


async def measure(model: str, queries, batch_size: int, inflight: int, max_tokens: int) -> tuple[float, int]:
    """Windows/s of one configuration (model loading excluded) and the number of generate() batches."""
    backend = HfBackend(model, batch_size=batch_size)
    await backend.start()
    try:
        settings = RerankSettings(depth=20, max_inflight=inflight, sampling=Sampling(max_tokens=max_tokens))
        began = time.perf_counter()
        result = await rerank_queries(queries, backend, settings)
        wall = time.perf_counter() - began
    finally:
        await backend.close()
    return result.stats.generated / wall, backend.batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", default=None, help="model path (default: build the tiny test model)")
    args = parser.parse_args()
    model = args.model
    if model is None:
        from tests.tiny_model import build_tiny_model

        model = str(build_tiny_model(Path(tempfile.mkdtemp(prefix="rearank-bench-"))))
    candidates = read_candidates(str(ROOT / "sample_runs" / "dl19-bm25-top100.candidates.json.gz"))
    run = {q: candidates.run[q] for q in list(candidates.run)[: args.queries]}
    queries = load_queries(run, candidates.topics, lambda w: {d: candidates.texts[d] for d in w},
                           depth=20, prompt="rearank").queries
    base, base_batches = asyncio.run(measure(model, queries, 1, 1, args.max_tokens))
    batched, batches = asyncio.run(measure(model, queries, args.batch_size, 2 * args.batch_size, args.max_tokens))
    print(f"windows: {len(queries)} x 1 (depth 20), max_tokens {args.max_tokens}, model {model}")
    print(f"one at a time      : {base:8.3f} windows/s ({base_batches} generate calls)")
    print(f"dynamic batching {args.batch_size:2d}: {batched:8.3f} windows/s ({batches} generate calls)")
    print(f"ratio              : {batched / base:8.2f}x")


if __name__ == "__main__":
    main()
