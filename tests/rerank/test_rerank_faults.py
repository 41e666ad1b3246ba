"""`rearank rerank --backend openai` against a fault-injecting OpenAI-compatible server on 127.0.0.1:
truncated 200 bodies, a server that dies mid-run, permanent 4xx, a model the server does not serve, a
base URL without /v1, a context smaller than the prompt. Each gets its documented exit status and one
clear line on stderr."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rearank_cli.formats import read_run
from tests.rerank.test_rerank_cli import PASSAGE_RE, records, small_run

pytestmark = pytest.mark.slow  # end to end: real CLI processes, servers, JVM, SLURM or VeRL

CANDIDATES = "dl19-bm25-top100.candidates.json.gz"
SERVED = [{"id": "served-model", "max_model_len": 32768}]


def ranking(body: dict) -> dict:
    """A chat completion that ranks the window's passages by a hash of their text."""
    texts = [m.group(2) for msg in body["messages"] if msg["role"] == "user"
             for m in [PASSAGE_RE.match(msg["content"])] if m]
    order = sorted(range(len(texts)), key=lambda i: hashlib.md5(texts[i].encode()).hexdigest())
    content = "<think>ok</think><answer>" + " > ".join(f"[{i + 1}]" for i in order) + "</answer>"
    return {"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 7}}


class Server:
    """A loopback server whose chat answers come from `chat(body, number)`: (status, JSON body), or
    (status, bytes) sent as they are, or None to drop the connection without an answer."""

    def __init__(self, chat: Callable[[dict, int], tuple[int, object] | None] | None = None,
                 models: list[dict] | None = SERVED) -> None:
        self.chat = chat or (lambda body, number: (200, ranking(body)))
        self.models = models
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def send(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                if self.path == "/v1/models" and outer.models is not None:
                    self.send(200, json.dumps({"object": "list", "data": outer.models}).encode())
                else:
                    self.send(404, b'{"detail": "Not Found"}')

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.calls.append(body)
                    number = len(outer.calls)
                answer = outer.chat(body, number)
                if answer is None:  # a dead server behind a proxy: the connection closes unanswered
                    self.close_connection = True
                    return
                status, payload = answer
                self.send(status, payload if isinstance(payload, bytes) else json.dumps(payload).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = self.root + "/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers: list[Server] = []

    def start(*args, **kwargs) -> Server:
        servers.append(Server(*args, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def rerank(cli, samples, tmp_path, url, *extra, queries=2, name="out.trec"):
    run = small_run(samples, tmp_path / "run.trec", queries)
    out = tmp_path / name
    result = cli("rerank", run, "--candidates", samples / CANDIDATES, "--backend", "openai", "--base-url", url,
                 "--model", "served-model", "--depth", "30", "--max-tokens", "64", "--max-inflight", "1",
                 "--retries", "2", "-o", out, *extra, env={"TQDM_DISABLE": "1"}, timeout=300)
    return result, run, out


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.decode().splitlines() if line.startswith("rearank: error:")]


def manifest_of(out: Path) -> dict:
    return json.loads(Path(f"{out}.manifest.json").read_text())


def test_truncated_200_bodies_are_retried(cli, samples, serve, tmp_path):
    def chat(body, number):
        if number <= 2:  # a proxy cut the first two answers short (a well-formed HTTP 200)
            return 200, json.dumps(ranking(body)).encode()[:40]
        return 200, ranking(body)

    server = serve(chat)
    result, run, out = rerank(cli, samples, tmp_path, server.url)
    assert result.returncode == 0, result.stderr.decode()
    manifest = manifest_of(out)
    assert manifest["backend"]["retried_requests"] == 2
    assert manifest["summary"]["windows"]["generated"] == 4 and manifest["summary"]["windows"]["failed"] == 0
    assert server.calls[-1]["seed"] == 42  # the default seed is sent


def test_windows_that_keep_failing_exit_3_with_the_output_written(cli, samples, serve, tmp_path):
    server = serve(lambda body, number: (200, b'{"choices": [{"message": {"content": "<think>'))
    result, run, out = rerank(cli, samples, tmp_path, server.url, "--seed", "-1")
    assert result.returncode == 3, result.stderr.decode()
    [line] = error_lines(result)
    assert "output written but 4 of 4 windows failed" in line and "rerun with --resume" in line
    assert "malformed response" in line
    assert read_run(str(out)) == {q: [(d, float(100 - i)) for i, (d, _) in enumerate(h)]
                                  for q, h in read_run(str(run)).items()}  # the input order, kept
    windows = manifest_of(out)["summary"]["windows"]
    assert (windows["total"], windows["generated"], windows["failed"]) == (4, 0, 4)
    assert len(server.calls) == 4 * 3  # each window tried 1 + --retries 2 times
    assert all("seed" not in call for call in server.calls)  # --seed -1 sends none


def test_server_dying_mid_run_exits_3_then_resume_completes(cli, samples, serve, tmp_path):
    alive = [True]

    def chat(body, number):
        if number > 3 and not alive[0]:
            return None
        return 200, ranking(body)

    reference = serve()
    full, run, full_out = rerank(cli, samples, tmp_path, reference.url, queries=3, name="full.trec")
    assert full.returncode == 0, full.stderr.decode()
    server = serve(chat)
    alive[0] = False
    result, run, out = rerank(cli, samples, tmp_path, server.url, queries=3)
    assert result.returncode == 3, result.stderr.decode()
    [line] = error_lines(result)
    assert "3 of 6 windows failed" in line and "--resume" in line
    windows = manifest_of(out)["summary"]["windows"]
    assert (windows["generated"], windows["failed"], windows["replayed"]) == (3, 3, 0)
    alive[0] = True
    again, _, _ = rerank(cli, samples, tmp_path, server.url, "--resume", queries=3)
    assert again.returncode == 0, again.stderr.decode()
    assert manifest_of(out)["summary"]["windows"]["replayed"] == 3
    assert out.read_bytes() == full_out.read_bytes()


def test_a_permanent_400_ends_the_run_at_once_saying_what_to_fix(cli, samples, serve, tmp_path):
    message = {"error": {"message": "top_p must be in (0, 1], got 0.0.", "type": "BadRequestError", "code": 400}}
    server = serve(lambda body, number: (400, message))
    result, run, out = rerank(cli, samples, tmp_path, server.url, queries=3)
    assert result.returncode == 1
    [line] = error_lines(result)
    assert "refused a decoding parameter (HTTP 400: top_p must be in (0, 1], got 0.0.); check --top-p" in line
    assert "--resume" not in line
    assert len(server.calls) == 1  # not retried, not repeated for every window
    assert not out.exists()


def test_a_model_the_server_does_not_serve_is_exit_2_before_any_work(cli, samples, serve, tmp_path):
    server = serve(models=[{"id": "Qwen/Qwen2.5-7B-Instruct"}, {"id": "le723z/Rearank-7B"}])
    result, run, out = rerank(cli, samples, tmp_path, server.url)
    assert result.returncode == 2
    assert error_lines(result) == [f"rearank: error: --model served-model is not served by {server.url}; it serves: "
                                   "Qwen/Qwen2.5-7B-Instruct, le723z/Rearank-7B"]
    assert server.calls == [] and not out.exists() and not Path(f"{out}.trace.jsonl").exists()


def test_a_base_url_without_v1_is_exit_2_with_a_hint(cli, samples, serve, tmp_path):
    server = serve()
    result, run, out = rerank(cli, samples, tmp_path, server.root)
    assert result.returncode == 2
    [line] = error_lines(result)
    assert f"did you mean {server.root}/v1?" in line and "HTTP 404" in line
    assert server.calls == [] and not out.exists()


@pytest.mark.parametrize("status,answer", [
    (404, {"error": {"message": "The model `served-model` does not exist.", "type": "NotFoundError"}}),  # vLLM
    (404, {"error": "model \"served-model\" not found, try pulling it first"}),  # Ollama
])
def test_an_unknown_model_at_a_server_without_a_model_list_is_exit_2(cli, samples, serve, tmp_path, status, answer):
    """The server lists no models, so the first request finds out: the one line says it is the model."""
    server = serve(lambda body, number: (status, answer), models=[])
    result, run, out = rerank(cli, samples, tmp_path, server.url, queries=3)
    assert result.returncode == 2, result.stderr.decode()
    [line] = error_lines(result)
    assert line.startswith(f"rearank: error: --model served-model is not served by {server.url} (HTTP 404: ")
    assert "not found" in line or "does not exist" in line
    assert "lists no models at GET /models" in line and "--resume" not in line
    assert len(server.calls) == 1 and not out.exists()


def test_a_404_without_a_model_in_it_names_the_endpoint(cli, samples, serve, tmp_path):
    server = serve(lambda body, number: (404, {"detail": "Not Found"}), models=[])
    result, run, out = rerank(cli, samples, tmp_path, server.url, queries=3)
    assert result.returncode == 1, result.stderr.decode()
    [line] = error_lines(result)
    assert "has no chat completions endpoint (HTTP 404: Not Found)" in line and f"check --base-url {server.url}" in line
    assert len(server.calls) == 1 and not out.exists()


CONTEXT = 3500  # every window of the first two DL19 queries is over it (3,971-4,508 tokens as counted)


def counted(body: dict) -> int:
    """The server's token count: 2 bytes per token, more than the client's estimate (3)."""
    return sum(len(m["content"].encode()) for m in body["messages"]) // 2


@pytest.mark.parametrize("wording", ["messages", "input"])
def test_a_context_smaller_than_the_prompt_shortens_the_passages(cli, samples, serve, tmp_path, wording):
    """/models says 3500 tokens: the client shortens by its estimate, then further on the server's error
    (the wordings of vLLM before 0.2x / OpenAI, and of vLLM 0.32)."""
    accepted: list[int] = []

    def chat(body, number):
        tokens = counted(body)
        if tokens + body["max_tokens"] > CONTEXT:
            text = (f"This model's maximum context length is {CONTEXT} tokens. However, you requested "
                    f"{tokens + body['max_tokens']} tokens ({tokens} in the messages, {body['max_tokens']} in the "
                    "completion). Please reduce the length of the messages or completion." if wording == "messages"
                    else f"This model's maximum context length is {CONTEXT} tokens. However, your prompt contains "
                    f"{tokens} input tokens, which exceeds this limit even without any output tokens.")
            return 400, {"error": {"message": text, "type": "BadRequestError", "code": 400}}
        accepted.append(tokens)
        return 200, ranking(body)

    server = serve(chat, models=[{"id": "served-model", "max_model_len": CONTEXT}])
    result, run, out = rerank(cli, samples, tmp_path, server.url)
    assert result.returncode == 0, result.stderr.decode()
    assert len(server.calls) > len(accepted) == 4  # some were refused, then sent shorter
    assert all(tokens + 64 <= CONTEXT for tokens in accepted)
    windows = manifest_of(out)["summary"]["windows"]
    assert (windows["generated"], windows["shortened"], windows["failed"]) == (4, 4, 0)
    trace = records(Path(f"{out}.trace.jsonl"))
    assert all(16 <= r["max_chars"] < 400 for r in trace)


def test_a_context_too_small_for_any_prompt_fails_the_windows(cli, samples, serve, tmp_path):
    def chat(body, number):
        text = (f"This model's maximum context length is 100 tokens. However, your request has {counted(body)} "
                "input tokens.")
        return 400, {"error": {"message": text}}

    server = serve(chat, models=[{"id": "served-model"}])
    result, run, out = rerank(cli, samples, tmp_path, server.url, "--max-tokens", "8")
    assert result.returncode == 3, result.stderr.decode()
    [line] = error_lines(result)
    assert "4 of 4 windows failed" in line and "maximum context length is 100" in line


# -- one writer per journal -------------------------------------------------------------------------------


def rerank_process(samples, tmp_path, url, name, *extra) -> subprocess.Popen:
    """`rerank` as in `rerank()` above, started in the background (its run: the first 3 DL19 queries)."""
    run = small_run(samples, tmp_path / "run.trec", 3)
    args = [sys.executable, "-m", "rearank_cli", "rerank", run, "--candidates", samples / CANDIDATES, "--backend",
            "openai", "--base-url", url, "--model", "served-model", "--depth", "30", "--max-tokens", "64",
            "--max-inflight", "1", "--retries", "2", "-o", tmp_path / name, *extra]
    return subprocess.Popen(list(map(str, args)), env=dict(os.environ, TQDM_DISABLE="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def steady(trace: Path) -> list[dict]:
    """A journal's window records without what changes from run to run (times)."""
    return [{k: v for k, v in r.items() if k not in ("time", "latency_s")} for r in records(trace)]


def gated_server(serve, opened_after: int) -> tuple[Server, threading.Event]:
    """A server that holds every chat request after the first `opened_after` until the event is set."""
    gate = threading.Event()

    def chat(body, number):
        if number > opened_after:
            gate.wait(120)
        return 200, ranking(body)

    return serve(chat), gate


def held_run(cli, samples, serve, tmp_path, answered: int):
    """An uncontended reference run (`full.trec`), then a run in the background (`out.trec`) on a server
    that holds every request after the first `answered`, returned once its next request is held."""
    reference = serve()
    full, _, full_out = rerank(cli, samples, tmp_path, reference.url, queries=3, name="full.trec")
    assert full.returncode == 0, full.stderr.decode()
    server, gate = gated_server(serve, answered)
    first = rerank_process(samples, tmp_path, server.url, "out.trec")
    while len(server.calls) <= answered:
        if first.poll() is not None:
            gate.set()
            raise AssertionError(first.communicate()[1].decode())
        time.sleep(0.02)
    return full_out, server, gate, first


def test_a_second_run_on_the_same_journal_is_refused_at_once(cli, samples, serve, tmp_path):
    full_out, server, gate, first = held_run(cli, samples, serve, tmp_path, 1)
    try:
        # the second run must end while the first still waits: a bounded wait, no clock
        second, _, out = rerank(cli, samples, tmp_path, server.url, queries=3)
        assert first.poll() is None and len(server.calls) == 2
    finally:
        gate.set()
        _, err = first.communicate(timeout=300)
    assert second.returncode == 2
    [line] = error_lines(second)
    assert line == (f"rearank: error: {out}.trace.jsonl: the journal is in use by another rearank process (pid "
                    f"{first.pid} on {socket.gethostname()} since {line.split(' since ')[1].split(')')[0]}); wait "
                    "for it to end, or give another -o or --trace")
    assert first.returncode == 0, err.decode()
    assert out.read_bytes() == full_out.read_bytes()
    assert steady(Path(f"{out}.trace.jsonl")) == steady(Path(f"{full_out}.trace.jsonl"))
    assert not Path(f"{out}.trace.jsonl.lock").exists()


def test_kill_9_frees_the_journal_for_resume(cli, samples, serve, tmp_path):
    full_out, server, gate, first = held_run(cli, samples, serve, tmp_path, 2)  # two windows journaled
    trace = tmp_path / "out.trec.trace.jsonl"
    try:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        gate.set()
    assert Path(f"{trace}.lock").exists() and len(records(trace)) == 2
    again, _, out = rerank(cli, samples, tmp_path, server.url, "--resume", queries=3)
    assert again.returncode == 0, again.stderr.decode()
    assert manifest_of(out)["summary"]["windows"]["replayed"] == 2
    assert out.read_bytes() == full_out.read_bytes()
    assert not Path(f"{trace}.lock").exists()


# -- a full disk ----------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 32 KiB tmpfs (root only: skipped otherwise, saying why)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_mid_run_exits_1_and_resume_elsewhere_completes(cli, samples, serve, small_disk, tmp_path):
    server = serve()
    full, _, full_out = rerank(cli, samples, tmp_path, server.url, queries=43, name="full.trec")
    assert full.returncode == 0, full.stderr.decode()
    assert Path(f"{full_out}.trace.jsonl").stat().st_size > 2 * 32 * 1024  # the journal cannot fit the disk
    trace = small_disk / "trace.jsonl"
    result, _, out = rerank(cli, samples, tmp_path, server.url, "--trace", trace, queries=43)
    assert result.returncode == 1, result.stderr.decode()
    [line] = error_lines(result)
    assert f"{trace}: cannot write the journal (No space left on device)" in line and "--resume" in line
    assert not out.exists() and trace.read_bytes().count(b"\n") > 1  # the header and some windows, maybe a torn line
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_bytes(trace.read_bytes())
    again, _, out = rerank(cli, samples, tmp_path, server.url, "--trace", elsewhere, "--resume", queries=43)
    assert again.returncode == 0, again.stderr.decode()
    assert manifest_of(out)["summary"]["windows"]["replayed"] > 0
    assert out.read_bytes() == full_out.read_bytes()
