"""`rearank rerank` / `rearank merge` end to end from the CLI: the hf backend on the tiny Qwen2 model,
a kill -9 in the middle of a run then `--resume`, the openai backend against a local HTTP server
(loopback only), shards + merge, and bad input."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from rearank_cli.cli import run as cli_run
from rearank_cli.formats import read_candidates, read_run

pytestmark = pytest.mark.slow  # end to end: real CLI processes, servers, JVM, SLURM or VeRL

ROOT = Path(__file__).resolve().parents[2]
PASSAGE_RE = re.compile(r"^\[(\d+)\] (.*)$", re.DOTALL)


def small_run(samples: Path, out: Path, queries: int) -> Path:
    """The first `queries` queries of the DL19 BM25 run."""
    lines = (samples / "dl19-bm25-top100.trec").read_text().splitlines()
    qids = list(dict.fromkeys(line.split()[0] for line in lines))[:queries]
    out.write_text("".join(line + "\n" for line in lines if line.split()[0] in qids))
    return out


def records(trace: Path) -> list[dict]:
    return [orjson.loads(line) for line in trace.read_bytes().splitlines()[1:]]


def assert_same_docs(out: Path, run: Path) -> None:
    got, want = read_run(str(out)), read_run(str(run))
    assert list(got) == list(want)
    for qid in want:
        assert sorted(d for d, _ in got[qid]) == sorted(d for d, _ in want[qid])


# -- hf backend -------------------------------------------------------------------------------


def test_hf_backend_end_to_end(cli, samples, tiny_model, tmp_path):
    run = small_run(samples, tmp_path / "run.trec", 2)
    out = tmp_path / "hf.trec"
    result = cli("rerank", run, "--candidates", samples / "dl19-bm25-top100.candidates.json.gz", "--backend", "hf",
                 "--model", tiny_model, "--depth", "30", "--max-tokens", "8", "--batch-size", "2", "-o", out)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout == b""
    assert_same_docs(out, run)
    trace = records(Path(f"{out}.trace.jsonl"))
    assert len(trace) == 2 * 2
    assert all(r["prompt_tokens"] > 1000 and 1 <= r["completion_tokens"] <= 8 for r in trace)
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    assert manifest["backend"]["backend"] == "hf" and manifest["backend"]["device"] == "cpu"
    assert manifest["backend"]["batches"] < 4  # concurrent windows of different queries were batched
    assert manifest["prompt"] == "rearank" and manifest["summary"]["windows"]["generated"] == 4
    assert "windows" in result.stderr.decode() and "parse failures" in result.stderr.decode()
    assert_evaluates(cli, out, samples, 2)


def assert_evaluates(cli, out: Path, samples: Path, queries: int, ties: bool = False) -> None:
    """`rearank eval` reads the output: every reranked query counts, the others are missing (-c)."""
    result = cli("eval", out, "--qrels", samples / "dl19-qrels.txt", "--format", "json", "-m", "nDCG@10")
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)["runs"][0]
    assert len(report["missed_queries"]) == 43 - queries and report["hits"] == 100 * queries
    if not ties:  # --score-mode rank: strictly decreasing scores, nothing for trec_eval to re-sort
        assert report["tied_hits"] == 0
    assert 0.0 <= report["means"]["nDCG@10"] <= 1.0


def test_kill_9_then_resume_regenerates_no_finished_window(samples, tiny_model, tmp_path):
    """A real process killed mid-run, then resumed. The journal does not depend on the strategy: tdpart's
    stop and resume (every finished window replayed, none asked again) is tests/rerank/test_rerank.py's."""
    run = small_run(samples, tmp_path / "run.trec", 3)
    common = [sys.executable, "-m", "rearank_cli", "rerank", str(run), "--candidates",
              str(samples / "dl19-bm25-top100.candidates.json.gz"), "--backend", "hf", "--model", str(tiny_model),
              "--prompt", "rankgpt", "--depth", "12", "--window", "6", "--step", "3", "--max-tokens", "4",
              "--max-inflight", "1"]
    env = dict(os.environ, TQDM_DISABLE="1")
    full = tmp_path / "full.trec"
    # the uninterrupted reference runs in this process (torch is already imported here)
    assert cli_run([*common[3:], "-o", str(full)]) == 0
    total = len(records(Path(f"{full}.trace.jsonl")))
    assert total == 9
    out, trace = tmp_path / "part.trec", tmp_path / "part.trec.trace.jsonl"
    process = subprocess.Popen([*common, "-o", str(out)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (trace.exists() and trace.read_bytes().count(b"\n") >= 3) and process.poll() is None:
            assert time.monotonic() < deadline, "no window finished in time"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before the kill; the test needs more windows"
    assert not out.exists()
    before = trace.read_bytes()
    done = before[: before.rfind(b"\n") + 1].count(b"\n") - 1
    assert 2 <= done < total
    result = subprocess.run([*common, "-o", str(out), "--resume"], capture_output=True, cwd=ROOT, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    after = trace.read_bytes()
    assert after.startswith(before[: before.rfind(b"\n") + 1])  # finished windows untouched
    windows = records(trace)
    keys = [(r["qid"], r["pass"], r["start"], r["end"]) for r in windows]
    assert len(keys) == len(set(keys)) == total  # every window generated exactly once overall
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    assert manifest["summary"]["windows"]["replayed"] == done
    assert manifest["summary"]["windows"]["generated"] == total - done
    assert out.read_bytes() == full.read_bytes()
    assert [r["output"] for r in windows] == [r["output"] for r in records(Path(f"{full}.trace.jsonl"))]


# -- openai backend against a local server ------------------------------------------------------


class FakeServer(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible server: ranks passages by a hash of their text; the first chat
    request of a session gets HTTP 429 (the client must retry)."""

    calls: list[dict] = []
    throttle = [True]
    delay = [0.0]

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        if self.path == "/v1/models":
            self._send(200, {"data": [{"id": "served-model", "max_model_len": 32768}]})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.throttle[0]:
            self.throttle[0] = False
            self._send(429, {"error": "slow down"}, {"Retry-After": "0"})
            return
        self.calls.append(body)
        time.sleep(self.delay[0])
        texts = [m.group(2) for msg in body["messages"] if msg["role"] == "user"
                 for m in [PASSAGE_RE.match(msg["content"])] if m]
        order = sorted(range(len(texts)), key=lambda i: hashlib.md5(texts[i].encode()).hexdigest())
        content = "<think>ok</think><answer>" + " > ".join(f"[{i + 1}]" for i in order) + "</answer>"
        self._send(200, {
            "choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000 + len(texts), "completion_tokens": 7},
        })


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_openai_backend_end_to_end_with_retry(cli, samples, server, tmp_path):
    FakeServer.calls.clear()
    FakeServer.throttle[0] = True
    run = small_run(samples, tmp_path / "run.trec", 4)
    out = tmp_path / "api.trec"
    result = cli("rerank", run, "--candidates", samples / "dl19-bm25-top100.candidates.json.gz",
                 "--backend", "openai", "--base-url", server, "--model", "served-model", "--depth", "30",
                 "--max-tokens", "64", "-o", out, "--score-mode", "first-stage")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert_same_docs(out, run)
    assert len(FakeServer.calls) == 8
    sent = FakeServer.calls[0]
    assert sent["model"] == "served-model" and sent["max_tokens"] == 64 and sent["temperature"] == 0.0
    assert sent["messages"][0]["content"].startswith("You are DeepRerank")
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    assert manifest["backend"]["retried_requests"] == 1
    assert manifest["summary"]["tokens"]["completion"] == 8 * 7
    assert manifest["summary"]["parse_failures"]["not_clean"] == 0
    assert manifest["score_mode"] == "first-stage"
    bm25 = read_run(str(run))
    for qid, hits in read_run(str(out)).items():
        assert sorted(s for _, s in hits) == sorted(s for _, s in bm25[qid])
    assert_evaluates(cli, out, samples, 4, ties=True)


def test_shards_merged_from_the_cli_equal_unsharded(cli, samples, server, tmp_path):
    FakeServer.throttle[0] = False
    run = small_run(samples, tmp_path / "run.trec", 5)
    base = ["--candidates", samples / "dl19-bm25-top100.candidates.json.gz", "--backend", "openai",
            "--base-url", server, "--model", "served-model", "--depth", "20", "--prompt", "rankgpt"]
    assert cli("rerank", run, *base, "-o", tmp_path / "full.trec").returncode == 0
    for i in range(2):
        result = cli("rerank", run, *base, "--shard", f"{i}/2", "-o", tmp_path / f"shard{i}.trec")
        assert result.returncode == 0, result.stderr.decode()[-2000:]
    shard0 = read_run(str(tmp_path / "shard0.trec"))
    assert len(shard0) == 3 and len(read_run(str(tmp_path / "shard1.trec"))) == 2
    result = cli("merge", tmp_path / "shard1.trec", tmp_path / "shard0.trec", "--expect", run,
                 "-o", tmp_path / "merged.trec")
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "merged.trec").read_bytes() == (tmp_path / "full.trec").read_bytes()
    result = cli("merge", tmp_path / "shard0.trec", "--expect", run, "-o", tmp_path / "bad.trec")
    assert result.returncode == 2 and b"missing" in result.stderr
    result = cli("merge", tmp_path / "shard0.trec", tmp_path / "shard0.trec", "-o", tmp_path / "bad.trec")
    assert result.returncode == 2 and b"two shards" in result.stderr
    assert not (tmp_path / "bad.trec").exists()


def test_sigterm_stops_cleanly_then_resume_finishes(cli, samples, server, tmp_path):
    FakeServer.throttle[0] = False
    run = small_run(samples, tmp_path / "run.trec", 4)
    args = [sys.executable, "-m", "rearank_cli", "rerank", str(run), "--candidates",
            str(samples / "dl19-bm25-top100.candidates.json.gz"), "--backend", "openai", "--base-url", server,
            "--model", "served-model", "--depth", "30", "--max-inflight", "1"]
    assert subprocess.run([*args, "-o", str(tmp_path / "full.trec")], cwd=ROOT, capture_output=True).returncode == 0
    out, trace = tmp_path / "out.trec", tmp_path / "out.trec.trace.jsonl"
    FakeServer.delay[0] = 0.3
    try:
        process = subprocess.Popen([*args, "-o", str(out)], cwd=ROOT, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not (trace.exists() and trace.read_bytes().count(b"\n") >= 2):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        FakeServer.delay[0] = 0.0
    assert process.returncode == 128 + signal.SIGTERM, stderr.decode()
    assert b"SIGTERM" in stderr and b"--resume" in stderr
    assert not out.exists()
    assert trace.read_bytes().endswith(b"\n")
    done = len(records(trace))
    assert 1 <= done < 8
    result = cli("rerank", *args[4:], "-o", out, "--resume")
    assert result.returncode == 0, result.stderr.decode()
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    assert manifest["summary"]["windows"]["replayed"] == done
    assert manifest["summary"]["windows"]["generated"] == 8 - done
    assert out.read_bytes() == (tmp_path / "full.trec").read_bytes()


def test_unreachable_server_fails_before_any_work(cli, samples, tmp_path):
    import socket

    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "x.trec"
    result = cli("rerank", samples / "dl19-bm25-top100.trec", "--candidates",
                 samples / "dl19-bm25-top100.candidates.json.gz", "--backend", "openai",
                 "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m", "-o", out)
    assert result.returncode == 1
    assert b"cannot reach the server" in result.stderr
    assert not out.exists() and not Path(f"{out}.trace.jsonl").exists()


# -- bad input ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_files(samples, tmp_path_factory):
    """A JSONL corpus and topics TSV for the first two DL19 queries, with one docid removed."""
    folder = tmp_path_factory.mktemp("corpus")
    candidates = read_candidates(str(samples / "dl19-bm25-top100.candidates.json.gz"))
    qids = list(candidates.run)[:2]
    dropped = candidates.run[qids[1]][5][0]
    with gzip.open(folder / "corpus.jsonl.gz", "wt") as handle:
        for qid in qids:
            for docid, _ in candidates.run[qid]:
                if docid != dropped:
                    handle.write(json.dumps({"id": docid, "contents": candidates.texts[docid]}) + "\n")
    (folder / "topics.tsv").write_text(f"{qids[0]}\t{candidates.topics[qids[0]]}\n")
    run = small_run(samples, folder / "run.trec", 2)
    return folder, qids, dropped, run


def test_bad_input_is_exit_2_naming_the_culprit(cli, corpus_files, tmp_path):
    folder, qids, dropped, run = corpus_files
    args = ["rerank", run, "--topics", folder / "topics.tsv", "--corpus", folder / "corpus.jsonl.gz",
            "--backend", "hf", "--model", "/nonexistent", "-o", tmp_path / "o.trec"]
    result = cli(*args)
    assert result.returncode == 2 and qids[1].encode() in result.stderr and b"no topic" in result.stderr
    (tmp_path / "topics.tsv").write_text((folder / "topics.tsv").read_text() + f"{qids[1]}\tsome query\n")
    args[3] = tmp_path / "topics.tsv"
    result = cli(*args)
    assert result.returncode == 2 and f"{qids[1]}/{dropped}".encode() in result.stderr
    assert not (tmp_path / "o.trec").exists()
    result = cli("rerank", run, "--candidates", folder / "missing.json", "--model", "m", "-o", "-", "--resume")
    assert result.returncode == 2 and b"--trace" in result.stderr
    result = cli("rerank", run, "--topics", folder / "topics.tsv", "--model", "m", "-o", "-")
    assert result.returncode == 2 and b"--corpus" in result.stderr


def test_topics_and_corpus_from_stdin_to_stdout(cli, corpus_files, server, tmp_path):
    FakeServer.throttle[0] = False
    folder, qids, dropped, run = corpus_files
    trace = tmp_path / "t.jsonl"
    result = cli("rerank", "-", "--topics", folder / "topics.tsv", "--corpus", folder / "corpus.jsonl.gz",
                 "--skip-missing", "--backend", "openai", "--base-url", server, "--model", "served-model",
                 "--depth", "20", "--trace", trace, "-o", "-", stdin=run.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 100 and {line.split()[0] for line in lines} == {qids[0]}  # qids[1] has no topic
    assert b"skipped 1 query" in result.stderr
    assert len(records(trace)) == 1
    # the same run again with --resume replays the journal: no request reaches the server
    FakeServer.calls.clear()
    again = cli("rerank", "-", "--topics", folder / "topics.tsv", "--corpus", folder / "corpus.jsonl.gz",
                "--skip-missing", "--backend", "openai", "--base-url", server, "--model", "served-model",
                "--depth", "20", "--trace", trace, "-o", "-", "--resume", stdin=run.read_bytes())
    assert again.returncode == 0 and again.stdout == result.stdout and FakeServer.calls == []


def test_hf_prompt_guard_and_cancellation_in_process(samples, tiny_model):
    """The prompt-length guard with the real tokenizer, and a clean close with requests cancelled mid-run."""
    import asyncio

    from rearank_cli.backends.base import Request, Sampling
    from rearank_cli.backends.hf import HfBackend
    from rearank_cli.rerank import RerankSettings, load_queries, rerank_queries

    candidates = read_candidates(str(samples / "dl19-bm25-top100.candidates.json.gz"))
    run = {q: candidates.run[q] for q in list(candidates.run)[:2]}
    queries = load_queries(run, candidates.topics, lambda w: {d: candidates.texts[d] for d in w},
                           depth=20, prompt="rearank").queries

    async def main():
        backend = HfBackend(str(tiny_model), batch_size=2)
        await backend.start()
        try:
            full = backend.count_prompt_tokens([{"role": "user", "content": "x " * 100}])
            assert 100 <= full <= 220
            backend.context_length = 3000  # a real window is ~6,000 tokens with this tokenizer
            settings = RerankSettings(depth=20, sampling=Sampling(max_tokens=4))
            result = await rerank_queries(queries, backend, settings)
            assert result.stats.shortened == 2 and result.stats.failed == 0
            # cancel long generations in flight: close() must return and leave nothing running
            backend.context_length = None
            long = Sampling(max_tokens=5000)
            tasks = [asyncio.ensure_future(backend.agenerate(Request([{"role": "user", "content": "hi"}], long)))
                     for _ in range(3)]
            await asyncio.sleep(0.5)
            for task in tasks:
                task.cancel()
        finally:
            await asyncio.wait_for(backend.close(), 120)
        assert all(task.cancelled() for task in tasks)

    asyncio.run(main())
