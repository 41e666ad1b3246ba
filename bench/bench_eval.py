"""Benchmark `rearank eval` against trec_eval on a synthetic run (10,000 queries x 1,000 docs by default).

Measured in the same run, on the same files in a temporary folder:
  1. reading TREC text: `read_run_scores` and the streaming `iter_run_queries` (lines/s) against
     pytrec_eval.parse_run, the usual way to read a run for pytrec_eval;
  2. end to end, each as a fresh process (wall time and peak RSS of the process tree):
     `rearank eval RUN --qrels QRELS` (5 default measures: nDCG@10, nDCG@5, MAP@1000, R@100, Judged@10);
     pyserini's trec_eval (`pyserini.eval.trec_eval`, the 4 trec_eval measures; it also reads the run
     with pandas); and the bare C trec_eval that pyserini wraps (`java -cp anserini.jar trec_eval`).
Prints ratios (ours / baseline: below 1 is faster or smaller). Usage:
    .venv/bin/python bench/bench_eval.py [--queries 10000] [--docs 1000] [--skip-pyserini]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TREC_MEASURES = ["-m", "ndcg_cut.5,10", "-m", "map_cut.1000", "-m", "recall.100"]


def make_files(folder: Path, queries: int, docs: int, seed: int = 0) -> tuple[Path, Path]:
    """A run with `queries` x `docs` lines (distinct scores) and qrels with ~50 labels per query."""
    rng = random.Random(seed)
    run, qrels = folder / "run.trec", folder / "qrels.txt"
    with open(run, "w") as out_run, open(qrels, "w") as out_qrels:
        for q in range(queries):
            qid = str(100_000 + q)
            ids = rng.sample(range(5_000_000), docs)
            out_run.write("".join(f"{qid} Q0 D{d} {r} {docs - r + 0.5:.4f} synthetic\n"
                                  for r, d in enumerate(ids, 1)))
            judged = ids[:40:2] + rng.sample(range(5_000_000), 30) + [ids[3]]
            out_qrels.write("".join(f"{qid} 0 D{d} {rng.choice((0, 0, 1, 2, 3))}\n"
                                    for d in dict.fromkeys(judged)))
            out_qrels.write(f"{qid} 0 D{ids[1]} 3\n" if ids[1] not in judged else "")
    return run, qrels


def timed_process(cmd: list[str], env: dict | None = None) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS MiB of the process tree, stdout) of a command.

    Run these before the bench process grows: a forked child's peak RSS counts the parent's pages.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}): {err.read().decode()[-2000:]}")
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read().decode()


def java_env() -> tuple[dict, str]:
    from rearank_cli.lucene import java as jvm

    home, jar = jvm.java_home(), jvm.anserini_jar()
    env = dict(os.environ, JAVA_HOME=home, PATH=os.path.join(home, "bin") + os.pathsep + os.environ["PATH"])
    return env, jar


def bench_reading(run: Path, lines: int) -> None:
    import gc

    import pytrec_eval

    from rearank_cli.formats.trec import iter_run_queries, read_run_scores

    def clock(fn) -> tuple[float, float]:
        gc.collect()
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - start, time.process_time() - cpu

    def stream() -> None:
        for _ in iter_run_queries(str(run)):
            pass

    def parse_run() -> None:
        with open(run) as handle:
            pytrec_eval.parse_run(handle)

    base = clock(parse_run)
    whole = clock(lambda: read_run_scores(str(run)))
    streamed = clock(stream)
    print(f"reading {lines:,} lines of TREC text (wall and CPU seconds; M lines/s of CPU; ratio = time/baseline):")
    for name, (wall, cpu) in (("pytrec_eval.parse_run", base), ("read_run_scores (whole)", whole),
                              ("iter_run_queries (stream)", streamed)):
        ratio = "baseline" if name.startswith("pytrec") else f"CPU x{cpu / base[1]:.2f}, wall x{wall / base[0]:.2f}"
        print(f"  {name:26s} wall {wall:6.2f} s  CPU {cpu:6.2f} s  {lines / cpu / 1e6:5.2f} M lines/s  {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--docs", type=int, default=1_000)
    parser.add_argument("--skip-pyserini", action="store_true", help="only the bare trec_eval baseline")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        start = time.perf_counter()
        run, qrels = make_files(Path(tmp), args.queries, args.docs)
        lines = args.queries * args.docs
        print(f"synthetic run: {lines:,} lines, {run.stat().st_size / 2**20:.0f} MiB "
              f"(made in {time.perf_counter() - start:.0f} s)")
        env, jar = java_env()
        command = [sys.executable, "-m", "rearank_cli", "eval", str(run), "--qrels", str(qrels), "--format", "trec"]
        ours = timed_process(command)
        bare = timed_process(["java", "-cp", jar, "trec_eval", "-c", *TREC_MEASURES, str(qrels), str(run)], env)
        baselines = [("trec_eval, bare C via java", bare)]
        if not args.skip_pyserini:
            code = ("from rearank_cli.lucene import java; java.start(); import sys; "
                    "from pyserini.eval.trec_eval import trec_eval; trec_eval(['trec_eval', *sys.argv[1:]])")
            pyserini = timed_process([sys.executable, "-c", code, "-c", *TREC_MEASURES, str(qrels), str(run)], env)
            baselines.append(("pyserini trec_eval", pyserini))
        print("end to end, 5 measures for rearank, 4 for trec_eval (fresh processes; CPU = user + sys of the"
              " process tree, peak RSS = its largest process):")
        for name, (wall, cpu, rss, _) in [("rearank eval", ours), *baselines]:
            print(f"  {name:28s} wall {wall:7.2f} s  CPU {cpu:7.2f} s  {rss:6.0f} MiB")
        print("ratios rearank / baseline (below 1: rearank is faster or smaller):")
        for base_name, base in baselines:
            print(f"  rearank / {base_name:28s} wall x{ours[0] / base[0]:.2f}  CPU x{ours[1] / base[1]:.2f}  "
                  f"memory x{ours[2] / base[2]:.2f}")
        same = sorted(line.split("\t")[0].strip() + line.split("\t")[2]
                      for line in bare[3].splitlines()) == sorted(
            line.split("\t")[0].strip() + line.split("\t")[2] for line in ours[3].splitlines()
            if not line.startswith("judged"))
        print(f"same numbers as trec_eval: {same}")
        bench_reading(run, lines)


if __name__ == "__main__":
    main()
