"""scripts/slurm_rerank.sh and scripts/slurm_train.sh on a real one-node SLURM (Debian's slurm-wlm + munge,
started here by hand; config template in tests/slurm/slurm.conf.in).

The rerank array (4 tasks, the openai backend against a slow local server) has one task requeued by hand
while it runs (`scontrol requeue`), one brought to its time-limit warning (a lower TimeLimit) and one sent
the warning signal by hand (`scancel --batch --signal=USR1`): the script stops rerank and requeues the
task. The merge runs with --dependency=afterany. Then a training submission that must fail."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.rerank.test_rerank_cli import PASSAGE_RE, FakeServer, records, small_run

pytestmark = pytest.mark.slow  # end to end: real CLI processes, servers, JVM, SLURM or VeRL

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "tests" / "slurm" / "slurm.conf.in"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "squeue", "scancel")
SHARDS = 4
QUERIES = 8
WINDOW_ARGS = ["--depth", "20", "--window", "10", "--step", "5", "--prompt", "rankgpt"]
#: seconds the server takes per window while the array runs: 6 windows per shard one at a time
DELAY = 9.0


def missing_requirement() -> str | None:
    """Why a one-node SLURM cannot be started here, or None."""
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd/munged needs root"
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        return f"SLURM not installed (no {', '.join(missing)}): apt-get install slurm-wlm munge"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no munge user (install the munge package)"
    if sys.prefix == sys.base_prefix:
        return "the tests must run from a virtual environment (the scripts activate it)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    """Polls `predicate` until it returns something true; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


class Cluster:
    """A one-node SLURM cluster in a temporary folder: munged, slurmctld and slurmd as child processes."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rearank-slurm-", dir="/tmp"))  # short: socket paths
        self.dir.chmod(0o755)
        self.conf = self.dir / "slurm.conf"
        self.env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": os.environ.get("HOME", "/root"),
                    "LANG": "C.UTF-8", "SLURM_CONF": str(self.conf)}
        self.daemons: list[subprocess.Popen] = []

    def start(self) -> None:
        """Writes the munge key and slurm.conf, starts the three daemons, waits for the node to be idle."""
        munge = self.dir / "munge"
        munge.mkdir(mode=0o755)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(128))
        key.chmod(0o600)
        user = pwd.getpwnam("munge")
        for path in (munge, key):
            os.chown(path, user.pw_uid, user.pw_gid)
        socket_path = munge / "munge.socket"
        self._daemon(["munged", "--foreground", f"--socket={socket_path}", f"--key-file={key}",
                      f"--pid-file={munge}/munged.pid", f"--log-file={munge}/munged.log",
                      f"--seed-file={munge}/munged.seed"], "munged", user="munge", group="munge", extra_groups=[])
        wait_for(socket_path.exists, 20, "munged's socket")
        node = socket.gethostname().split(".")[0]
        fields = {"DIR": str(self.dir), "NODE": node, "CTLD_PORT": str(free_port()),
                  "SLURMD_PORT": str(free_port()), "USER": "root", "MUNGE_SOCKET": str(socket_path), "CPUS": "8"}
        text = TEMPLATE.read_text()
        for name, value in fields.items():
            text = text.replace(f"@{name}@", value)
        self.conf.write_text(text)
        for sub in ("state", "spool"):
            (self.dir / sub).mkdir()
        self._daemon(["slurmctld", "-D", "-i", "-f", str(self.conf)], "slurmctld")
        self._daemon(["slurmd", "-D", "-f", str(self.conf), "-N", node], "slurmd")
        wait_for(lambda: self.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip() == "idle", 60,
                 "the node to be idle")

    def _daemon(self, args: list[str], name: str, **kwargs) -> None:
        log = open(self.dir / f"{name}.out", "wb")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env, **kwargs)
        log.close()
        self.daemons.append(process)
        time.sleep(0.2)
        assert process.poll() is None, f"{name} exited: {(self.dir / f'{name}.out').read_text()[-2000:]}"

    def run(self, *args: str, env: dict | None = None, cwd: Path | None = None, check: bool = True):
        """Runs a SLURM client command against this cluster."""
        result = subprocess.run(list(args), capture_output=True, text=True, env={**self.env, **(env or {})},
                                cwd=cwd, timeout=60)
        assert not check or result.returncode == 0, f"{args}: {result.stderr}"
        return result

    def sbatch(self, *args: str, env: dict | None = None, cwd: Path | None = None) -> str:
        """Submits a job; returns its id."""
        return self.run("sbatch", "--parsable", *args, env=env, cwd=cwd).stdout.strip().split(";")[0]

    def jobs(self, job_id: str) -> list[dict[str, str]]:
        """`scontrol show job` of a job (every task of an array) as dicts of its fields."""
        result = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        return [dict(field.split("=", 1) for field in line.split() if "=" in field)
                for line in result.stdout.splitlines() if line.strip()]

    def stop(self) -> None:
        """Cancels every job, then stops the daemons (slurmd first) and removes the folder."""
        if any(process.poll() is None for process in self.daemons):
            self.run("scancel", "--user", "root", check=False)
            with_steps = lambda: not self.run("squeue", "-h", "-t", "R,CG", check=False).stdout.strip()  # noqa: E731
            try:
                wait_for(with_steps, 30, "jobs to end")
            except AssertionError:
                pass
        for process in reversed(self.daemons):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def job_env() -> dict[str, str]:
    """What a user's job gets: this checkout's code and virtual environment, nothing activated.
    REARANK_VENV is left unset when this environment is the repository's .venv (the scripts' default)."""
    env = {"PYTHONPATH": str(ROOT)}
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        env["REARANK_VENV"] = sys.prefix
    return env


# -- a slow OpenAI-style server that counts the requests of every window -------------------------------


class CountingServer(FakeServer):
    """Answers every chat request after `delay[0]` seconds; the answer's reasoning is the prompt's hash,
    so each journal record names the request it came from. `counts` holds requests per prompt hash."""

    counts: dict[str, int] = {}
    lock = threading.Lock()
    delay = [0.0]

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = hashlib.sha1(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
        time.sleep(self.delay[0])
        texts = [m.group(2) for msg in body["messages"] if msg["role"] == "user"
                 for m in [PASSAGE_RE.match(msg["content"])] if m]
        order = sorted(range(len(texts)), key=lambda i: hashlib.md5(texts[i].encode()).hexdigest())
        content = f"<think>{key}</think><answer>" + " > ".join(f"[{i + 1}]" for i in order) + "</answer>"
        try:
            self._send(200, {
                "choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 7},
            })
        except (BrokenPipeError, ConnectionResetError):  # the client stopped (SIGTERM): nothing to answer
            pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a cancelled request is expected here
        pass


@pytest.fixture(scope="module")
def slow_server():
    with QuietServer(("127.0.0.1", 0), CountingServer) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        httpd.shutdown()


def request_key(record: dict) -> str:
    """The prompt hash the server put in a journal record's output."""
    return record["output"].split("<think>", 1)[1].split("</think>", 1)[0]


# -- the rerank array ------------------------------------------------------------------------------------


def task_state(cluster: Cluster, array_id: str) -> dict[int, dict[str, str]]:
    """Fields of each array task that has its own job record, by task index."""
    return {int(job["ArrayTaskId"]): job for job in cluster.jobs(array_id) if job.get("ArrayTaskId", "").isdigit()}


def journal_windows(path: Path) -> int:
    return max(path.read_bytes().count(b"\n") - 1, 0) if path.exists() else 0


def test_rerank_array_with_requeue_and_time_limit(cluster, slow_server, samples, cli, tmp_path):
    run = small_run(samples, tmp_path / "run.trec", QUERIES)
    candidates = samples / "dl19-bm25-top100.candidates.json.gz"
    rerank_args = ["--candidates", str(candidates), "--backend", "openai", "--base-url", slow_server,
                   "--model", "served-model", "--max-inflight", "1", *WINDOW_ARGS]
    CountingServer.delay[0] = 0.0
    reference = cli("rerank", run, *rerank_args, "-o", tmp_path / "full.trec")
    assert reference.returncode == 0, reference.stderr.decode()[-2000:]
    CountingServer.counts.clear()
    CountingServer.delay[0] = DELAY

    shards = tmp_path / "shards"
    array_id = cluster.sbatch(
        f"--array=0-{SHARDS - 1}", "--cpus-per-task=1", "--time=10", "--output", str(tmp_path / "task-%a.log"),
        str(ROOT / "scripts" / "slurm_rerank.sh"), str(run), str(shards), *rerank_args,
        env=job_env(), cwd=tmp_path)
    venv_path = f"{sys.prefix}/bin:{cluster.env['PATH']}"  # the user submits the merge from an active venv
    merge_id = cluster.sbatch(
        f"--dependency=afterany:{array_id}", "--output", str(tmp_path / "merge.log"), "--wrap",
        f"rearank merge {shards}/*.trec --expect {run} -o {tmp_path / 'merged.trec'}",
        env={"PATH": venv_path, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)

    journals = {i: shards / f"{i}.trec.trace.jsonl" for i in range(SHARDS)}
    wait_for(lambda: all(journal_windows(journals[i]) >= 1 for i in range(3)), 90, "the first windows of tasks 0-2")
    tasks = task_state(cluster, array_id)
    assert [tasks[i]["JobState"] for i in range(3)] == ["RUNNING"] * 3, tasks
    cluster.run("scontrol", "requeue", tasks[0]["JobId"])  # by hand, as a preemption would
    # task 1: a 2-minute limit is within the script's 120 s warning: SLURM sends USR1 at its next check
    cluster.run("scontrol", "update", f"JobId={tasks[1]['JobId']}", "TimeLimit=2")
    # task 2: the same warning by hand, to the batch shell only
    cluster.run("scancel", "--batch", "--signal=USR1", tasks[2]["JobId"])

    snapshots: dict[int, bytes] = {}

    def interrupted() -> bool:
        for i, job in task_state(cluster, array_id).items():
            if i not in snapshots and job["JobState"] == "PENDING" and int(job["Restarts"]) >= 1:
                snapshots[i] = journals[i].read_bytes()  # the journal the stopped allocation left
                if i == 1:
                    cluster.run("scontrol", "update", f"JobId={job['JobId']}", "TimeLimit=10")
        return len(snapshots) == 3

    wait_for(interrupted, 90, "tasks 0, 1 and 2 to be requeued")
    wait_for(lambda: cluster.jobs(merge_id)[0]["JobState"] not in ("PENDING", "RUNNING", "COMPLETING"), 150,
             "the merge job")

    logs = {i: (tmp_path / f"task-{i}.log").read_text() for i in range(SHARDS)}
    final = task_state(cluster, array_id)
    for i in range(SHARDS):
        assert (final[i]["JobState"], final[i]["ExitCode"]) == ("COMPLETED", "0:0"), logs[i]
    assert [int(final[i]["Restarts"]) for i in range(SHARDS)] == [1, 1, 1, 0], final
    assert "received SIGTERM" in logs[0] and "requeueing" not in logs[0]
    for i in (1, 2):
        assert "stopped on SIGUSR1 (time limit near), exit status 143: requeueing job" in logs[i], logs[i]
    merge = cluster.jobs(merge_id)[0]
    assert (merge["JobState"], merge["ExitCode"]) == ("COMPLETED", "0:0"), (tmp_path / "merge.log").read_text()
    assert (tmp_path / "merged.trec").read_bytes() == (tmp_path / "full.trec").read_bytes()

    # every journal the stopped allocations left is a prefix of the final one
    for i, snapshot in snapshots.items():
        assert 1 <= snapshot.count(b"\n") - 1 < 6
        assert journals[i].read_bytes().startswith(snapshot)
    # no finished window was requested again: only a window in flight at the stop may be asked twice
    counts = CountingServer.counts
    finished = [request_key(r) for snapshot in snapshots.values() for r in records_of(snapshot)]
    assert all(counts[key] == 1 for key in finished), [counts[key] for key in finished]
    all_windows = [request_key(r) for i in range(SHARDS) for r in records(journals[i])]
    assert len(all_windows) == len(set(all_windows)) == QUERIES * 3 == len(counts)
    assert sorted(counts.values()).count(2) <= len(snapshots) and max(counts.values()) <= 2, counts


def records_of(journal: bytes) -> list[dict]:
    return [json.loads(line) for line in journal.splitlines()[1:]]


# -- training: a failure must fail the job -----------------------------------------------------------------


def test_train_failure_fails_the_job(cluster, samples, tmp_path):
    (tmp_path / "train.jsonl").write_text("{}\n")
    # submitted from another folder with relative paths; the default accelerate config (FSDP2) must be found
    job_id = cluster.sbatch(
        "--gpus-per-node=0", "--cpus-per-task=1", "--output", str(tmp_path / "train.log"),
        str(ROOT / "scripts" / "slurm_train.sh"), "train.jsonl", "no-such-qrels.txt", "out",
        env={**job_env(), "GPUS": "1"}, cwd=tmp_path)
    job = wait_for(lambda: next((j for j in cluster.jobs(job_id)
                                 if j["JobState"] not in ("PENDING", "RUNNING", "COMPLETING")), None),
                   120, "the training job")
    log = (tmp_path / "train.log").read_text()
    assert job["JobState"] == "FAILED" and job["ExitCode"] != "0:0", (job, log)
    assert "no-such-qrels.txt: file not found" in log
    assert not (tmp_path / "out").exists()
