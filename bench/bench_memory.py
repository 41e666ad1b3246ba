"""Benchmark: peak memory and throughput of `rearank rerank`, `eval` and `augment` as the number of queries grows.

Data: DL19 (43 queries x 100 BM25 candidates) repeated under new qids (`1037798` -> `1037798r7`) up to
each size: a TREC run, topics TSV and JSONL corpus, the same as a rank_llm candidates JSON, and qrels.
`rerank` runs against a zero-latency OpenAI-compatible server on 127.0.0.1 (a separate process that
answers every window at once), so the numbers are rearank's own cost: reading, prompting, parsing,
journaling, writing. Each measurement is one `python -m rearank_cli` process: peak RSS from the
kernel (`wait4` ru_maxrss), windows/s from the run's manifest, wall time around the process.

With `--baseline REV` every measurement is repeated with the `rearank_cli` of that git revision
(extracted with `git archive` into a temporary folder), in the same run, and the table shows both
and their ratio.

    .venv/bin/python bench/bench_memory.py [--sizes 1000,5000,10000] [--baseline REV] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_runs"
MODEL = "served-model"
PASSAGE = re.compile(r"\[(\d+)\]")
DL19_QUERIES = 43


# ---------------------------------------------------------------- data


def copies_for(queries: int) -> int:
    """How many times DL19 is repeated for about `queries` queries (10,000 -> 235: 10,105 queries)."""
    return max(1, round(queries / DL19_QUERIES))


def make_data(folder: Path, copies: int, texts_too: bool = True) -> dict[str, Path]:
    """DL19 repeated `copies` times under new qids: run, topics, corpus, candidates, qrels (in `folder`);
    without `texts_too`, the run and qrels only."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in ("run.trec", "topics.tsv", "corpus.jsonl", "candidates.json",
                                              "qrels.txt")}
    run_lines = (SAMPLES / "dl19-bm25-top100.trec").read_text().splitlines()
    topics = dict(line.split("\t", 1) for line in (SAMPLES / "dl19-topics.tsv").read_text().splitlines())
    qrels_lines = (SAMPLES / "dl19-qrels.txt").read_text().splitlines()
    entries = orjson.loads(gzip.decompress((SAMPLES / "dl19-bm25-top100.candidates.json.gz").read_bytes()))
    texts = {hit["docid"]: hit["content"] for entry in entries for hit in entry["hits"]}
    if not texts_too:
        paths = {name: path for name, path in paths.items() if name in ("run.trec", "qrels.txt")}
    with open(paths["run.trec"], "w") as run, open(paths["qrels.txt"], "w") as qrels, \
            open(folder / "topics.tsv", "w") as tsv, open(folder / "candidates.json", "wb") as cands:
        cands.write(b"[")
        for copy in range(copies):
            run.writelines(_renamed(line, copy) + "\n" for line in run_lines)
            qrels.writelines(_renamed(line, copy) + "\n" for line in qrels_lines)
            if not texts_too:
                continue
            tsv.writelines(f"{qid}r{copy}\t{text}\n" for qid, text in topics.items())
            for number, entry in enumerate(entries):
                qid = f"{entry['hits'][0]['qid']}r{copy}"
                hits = [{**hit, "qid": qid} for hit in entry["hits"]]
                cands.write((b"," if copy or number else b"") + orjson.dumps({"query": entry["query"], "hits": hits}))
        cands.write(b"]")
    with open(folder / "corpus.jsonl", "wb") as corpus:
        corpus.writelines(orjson.dumps({"id": docid, "contents": text}) + b"\n" for docid, text in texts.items())
    return {name.split(".")[0]: path for name, path in paths.items()}


def _renamed(line: str, copy: int) -> str:
    qid, rest = line.split(" ", 1)
    return f"{qid}r{copy} {rest}"


# ---------------------------------------------------------------- a zero-latency server (its own process)


def answer(body: bytes) -> bytes:
    """A chat completion ranking the window's passages in reverse order (deterministic, instant)."""
    messages = orjson.loads(body)["messages"]
    count = sum(1 for m in messages if m["role"] == "user" and PASSAGE.match(m["content"]))
    ranking = " > ".join(f"[{i}]" for i in range(count, 0, -1))
    return orjson.dumps({"choices": [{"message": {"role": "assistant",
                                                  "content": f"<think>ok</think><answer>{ranking}</answer>"},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 1000, "completion_tokens": 10}})


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    models = orjson.dumps({"object": "list", "data": [{"id": MODEL, "max_model_len": 1 << 20}]})
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in lines[1:]
                           if line.lower().startswith(b"content-length:")), 0)
            body = await reader.readexactly(length) if length else b""
            data = answer(body) if lines[0].startswith(b"POST") else models
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(data), data))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve(port_file: str) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", 0, backlog=256)
    Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
    async with server:
        await server.serve_forever()


class Server:
    """The zero-latency server in a child process; `url` is its /v1 base URL."""

    def __init__(self) -> None:
        self.folder = tempfile.TemporaryDirectory()
        port_file = Path(self.folder.name) / "port"
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
        for _ in range(600):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port_file.read_text()}/v1"

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        self.folder.cleanup()


# ---------------------------------------------------------------- measurements


@dataclass
class Measure:
    peak_mib: float
    wall_s: float
    cpu_s: float
    windows_per_s: float | None
    windows: int | None


def measure(source: Path, args: list[str], manifest: Path | None = None) -> Measure:
    """One `python -m rearank_cli ARGS` with `source`'s rearank_cli: its peak RSS and time."""
    env = dict(os.environ, PYTHONPATH=str(source), TQDM_DISABLE="1")
    with tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "rearank_cli", *map(str, args)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=err, cwd=source)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - began
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"rearank {' '.join(map(str, args[:1]))} exited {process.returncode}: "
                               f"{err.read().decode()[-2000:]}")
    speed = windows = None
    if manifest is not None:
        summary = json.loads(manifest.read_text())["summary"]
        speed, windows = summary["windows_per_s"], summary["windows"]["total"]
    return Measure(usage.ru_maxrss / 1024, wall, usage.ru_utime + usage.ru_stime, speed, windows)


def rerank_args(mode: str, data: dict[str, Path], url: str, out: Path) -> list[str]:
    """`rerank` over the data: `corpus` (run + topics + JSONL corpus) or `candidates` (the JSON alone)."""
    texts = (["--candidates", data["candidates"]] if mode == "candidates"
             else [data["run"], "--topics", data["topics"], "--corpus", data["corpus"]])
    return ["rerank", *texts, "--backend", "openai", "--base-url", url, "--model", MODEL, "-o", out]


def baseline_tree(rev: str, folder: Path) -> Path:
    """`rearank_cli` as it is at git revision `rev`, extracted into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", rev, "rearank_cli"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def replayed_journal(journal: Path, copies: int, out: Path) -> Path:
    """A journal for DL19 repeated `copies` times holding every window, made from a smaller run's journal
    (the zero-latency server answers each copy of a query alike): its header, then copy 0's records under
    each copy's qids."""
    lines = journal.read_bytes().splitlines(keepends=True)
    first = [orjson.loads(line) for line in lines[1:]]
    first = [record for record in first if record["qid"].endswith("r0")]
    with open(out, "wb") as handle:
        handle.write(lines[0])
        for copy in range(copies):
            handle.writelines(orjson.dumps({**record, "qid": f"{record['qid'][:-2]}r{copy}"}) + b"\n"
                              for record in first)
    return out


def bench(sizes: list[int], eval_sizes: list[int], modes: list[str], baseline: str | None,
          baseline_sizes: list[int], replay_sizes: list[int]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        trees = {"new": ROOT}
        if baseline:
            trees["baseline"] = baseline_tree(baseline, work / "baseline")
        server = Server()
        journal = None
        try:
            for size in sorted(set(sizes) | set(eval_sizes) | set(replay_sizes)):
                data = make_data(work / f"data-{size}", copies_for(size), texts_too=size in sizes + replay_sizes)
                queries = copies_for(size) * DL19_QUERIES
                for tree_name, tree in trees.items():
                    if tree_name == "baseline" and size not in baseline_sizes:
                        continue

                    def add(command: str, got: Measure, queries: int = queries, tree_name: str = tree_name) -> None:
                        rows.append({"command": command, "queries": queries, "tree": tree_name, **got.__dict__})
                        _print(rows[-1])

                    for mode in modes if size in sizes else []:
                        out = work / f"out-{size}-{mode}-{tree_name}.trec"
                        add(f"rerank ({mode})",
                            measure(tree, rerank_args(mode, data, server.url, out), Path(f"{out}.manifest.json")))
                        if journal is None:
                            journal = work / "first.trace.jsonl"
                            Path(f"{out}.trace.jsonl").rename(journal)
                        out.unlink()
                    for mode in modes if size in replay_sizes and journal is not None else []:
                        out = work / f"replay-{size}-{mode}-{tree_name}.trec"
                        trace = replayed_journal(journal, copies_for(size), work / "replay.trace.jsonl")
                        add(f"rerank --resume ({mode})", measure(
                            tree, [*rerank_args(mode, data, server.url, out), "--trace", trace, "--resume"],
                            Path(f"{out}.manifest.json")))
                        out.unlink()
                    if size in sizes + replay_sizes:
                        out = work / f"aug-{size}-{tree_name}.jsonl"
                        add("augment", measure(tree, ["augment", data["run"], "--qrels", data["qrels"], "--topics",
                                                      data["topics"], "--corpus", data["corpus"],
                                                      "--samples-per-query", "1", "-o", out]))
                        out.unlink()
                    if size in eval_sizes:
                        add("eval", measure(tree, ["eval", data["run"], "--qrels", data["qrels"], "-m", "ndcg_cut.10",
                                                   "-m", "map", "-o", work / "eval.txt"]))
                for path in (work / f"data-{size}").iterdir():
                    path.unlink()
        finally:
            server.close()
    return rows


def _print(row: dict) -> None:
    speed = f", {row['windows_per_s']:.0f} windows/s" if row.get("windows_per_s") else ""
    print(f"  {row['tree']:<8} {row['command']:<20} {row['queries']:>7} queries: {row['peak_mib']:7.1f} MiB peak, "
          f"{row['wall_s']:6.1f} s wall, {row['cpu_s']:6.1f} s CPU{speed}", file=sys.stderr, flush=True)


def table(rows: list[dict]) -> str:
    """A Markdown table: one line per command and size, the baseline's numbers beside where measured."""
    base = {(r["command"], r["queries"]): r for r in rows if r["tree"] == "baseline"}
    lines = ["| command | queries | peak RSS MiB | baseline | ratio | windows/s | baseline | CPU s | baseline |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in (r for r in rows if r["tree"] == "new"):
        old = base.get((row["command"], row["queries"]), {})
        ratio = f"{row['peak_mib'] / old['peak_mib']:.2f}" if old else "-"
        lines.append(f"| {row['command']} | {row['queries']:,} | {row['peak_mib']:.0f} | {_num(old.get('peak_mib'))} | "
                     f"{ratio} | {_num(row.get('windows_per_s'))} | {_num(old.get('windows_per_s'))} | "
                     f"{row['cpu_s']:.1f} | {_num(old.get('cpu_s'), 1)} |")
    return "\n".join(lines)


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000,10000", help="rerank and augment sizes, in queries")
    parser.add_argument("--eval-sizes", default="1000,10000,100000", help="eval sizes, in queries (x100 lines)")
    parser.add_argument("--modes", default="corpus,candidates")
    parser.add_argument("--baseline", help="git revision to measure beside this tree (e.g. main)")
    parser.add_argument("--baseline-sizes", help="sizes measured for the baseline too (default: all)")
    parser.add_argument("--replay-sizes", default="",
                        help="sizes measured as a --resume with every window in the journal (no window generated: "
                        "reading, replay and writing only), from the smallest --sizes run's journal")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    eval_sizes = [int(s) for s in args.eval_sizes.split(",") if s]
    replay_sizes = [int(s) for s in args.replay_sizes.split(",") if s]
    everything = f"{args.sizes},{args.eval_sizes},{args.replay_sizes}"
    baseline_sizes = [int(s) for s in (args.baseline_sizes or everything).split(",") if s]
    rows = bench(sizes, eval_sizes, args.modes.split(","), args.baseline, baseline_sizes, replay_sizes)
    print(f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}; zero-latency local "
          "server; DL19 repeated under new qids")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
