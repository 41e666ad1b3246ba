"""One writer per output (`rearank_cli.locks`): a second process is refused at once naming the holder,
the kernel frees the lock of a killed process, `train` and `merge` hold it too. The rerank journal's lock
is tested end to end in tests/rerank/test_rerank_faults.py."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rearank_cli import locks
from rearank_cli.locks import Busy, exclusive, lock_path

HOLD = textwrap.dedent("""
    import sys, time
    from rearank_cli.locks import exclusive
    with exclusive(sys.argv[1], "the journal", "--trace"):
        print("held", flush=True)
        time.sleep(600)
""")


def holder(path: Path) -> subprocess.Popen:
    """Another process holding the lock of `path` (it says `held` once it does)."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
    path = tmp_path / "out.trec.trace.jsonl"
    process = holder(path)
    try:
        with pytest.raises(Busy) as caught, exclusive(str(path), "the journal", "-o or --trace"):
            pass
        message = str(caught.value)
        assert message.startswith(f"{path}: the journal is in use by another rearank process (pid {process.pid} on "
                                  f"{socket.gethostname()} since ")
        assert message.endswith("wait for it to end, or give another -o or --trace")
        assert caught.value.exit_code == 2
    finally:
        process.kill()
        process.wait()


def test_the_kernel_frees_the_lock_of_a_killed_process(tmp_path):
    path = tmp_path / "journal.jsonl"
    process = holder(path)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert Path(lock_path(str(path))).exists()  # left behind by kill -9, and no obstacle
    with exclusive(str(path), "the journal", "--trace"):
        assert f"pid {os.getpid()} on" in Path(lock_path(str(path))).read_text()
    assert not Path(lock_path(str(path))).exists()


def test_held_again_after_release_and_nothing_for_stdout(tmp_path):
    path = str(tmp_path / "sub" / "out.trec")
    for _ in range(2):
        with exclusive(path, "the output", "-o"):
            assert os.path.exists(path + ".lock")
        assert not os.path.exists(path + ".lock")
    with exclusive("-", "the output", "-o"), exclusive(None, "the output", "-o"):
        pass
    assert lock_path(str(tmp_path / "folder") + "/") == str(tmp_path / "folder") + ".lock"


def test_a_filesystem_without_flock_warns_and_runs(tmp_path, monkeypatch, caplog):
    """NFS mounted with nolock or Lustre without -o flock answer ENOLCK / ENOSYS: a warning, no check."""
    def refuse(fd, operation):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(locks.fcntl, "flock", refuse)
    with exclusive(str(tmp_path / "out.trec"), "the output", "-o"):
        pass
    assert "cannot lock" in caplog.text and "without the one-writer check" in caplog.text


def test_merge_refuses_an_output_another_process_writes(cli, samples, tmp_path):
    out = tmp_path / "merged.trec"
    with exclusive(str(out), "the merge output", "-o"):
        result = cli("merge", samples / "dl19-bm25-top100.trec", "-o", out)
    assert result.returncode == 2
    [line] = result.stderr.decode().strip().splitlines()
    assert f"{out}: the merge output is in use by another rearank process (pid {os.getpid()}" in line
    assert not out.exists()
    assert cli("merge", samples / "dl19-bm25-top100.trec", "-o", out).returncode == 0
    assert out.read_bytes() == (samples / "dl19-bm25-top100.trec").read_bytes()


def test_train_refuses_an_output_folder_another_process_writes(cli, tmp_path):
    folder = tmp_path / "model"
    with exclusive(str(folder), "the output folder", "-o"):
        result = cli("train", tmp_path / "train.jsonl", "--model", "m", "--qrels", tmp_path / "q.txt", "-o", folder)
    assert result.returncode == 2
    [line] = result.stderr.decode().strip().splitlines()
    assert f"{folder}: the output folder is in use by another rearank process (pid {os.getpid()}" in line
    assert not folder.exists()
