"""One stop mechanism for every long command (`jobs.signals`): SIGINT/SIGTERM -> a clean stop -> exit status
128 + the signal's number, no partial output, the previous handlers back; a second signal exits at once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rearank_cli.errors import Interrupted
from rearank_cli.formats.textio import atomic_output
from rearank_cli.jobs.signals import stop_on_signals
from rearank_cli.stopping import run_until_stopped
from tests.conftest import ROOT, SAMPLES


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_a_sync_job_and_leaves_no_output(tmp_path, signum, status):
    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as stopped:
        with stop_on_signals("no output written"), atomic_output(str(tmp_path / "out.txt")) as out:
            out.write("half a run\n")
            os.kill(os.getpid(), signum)
    assert stopped.value.exit_code == status and stopped.value.signum == signum
    assert str(stopped.value) == f"stopped by {signal.Signals(signum).name}; no output written"
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary file
    assert signal.getsignal(signum) is before


def test_a_signal_stops_an_async_job_through_its_stop_signal():
    async def job() -> None:
        loop = asyncio.get_running_loop()
        with stop_on_signals("kept", loop) as stop:
            loop.call_soon(os.kill, os.getpid(), signal.SIGTERM)
            await run_until_stopped(asyncio.sleep(3600), stop)

    with pytest.raises(Interrupted) as stopped:
        asyncio.run(job())
    assert stopped.value.exit_code == 143 and str(stopped.value) == "stopped by SIGTERM"


def test_a_second_signal_exits_at_once():
    code = ("import os, signal\nfrom rearank_cli.jobs.signals import stop_on_signals\n"
            "with stop_on_signals():\n    try:\n        os.kill(os.getpid(), signal.SIGTERM)\n"
            "    except BaseException:\n        os.kill(os.getpid(), signal.SIGINT)\n        print('cleaned up')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=60)
    assert result.returncode == 130 and result.stdout == b""


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (Linux: the SigCgt mask in /proc/PID/status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(mask & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/PID/status")
def test_sigterm_stops_rearank_eval_with_exit_143_and_no_output(tmp_path):
    """`rearank eval -` blocks reading the run from stdin inside its job; SIGTERM then stops it cleanly."""
    out = tmp_path / "eval.txt"
    process = subprocess.Popen([sys.executable, "-m", "rearank_cli", "eval", "-", "--qrels",
                                str(SAMPLES / "dl19-qrels.txt"), "-o", str(out)],
                               cwd=ROOT, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not catches_sigterm(process.pid):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143, stderr.decode()
    assert stderr.decode().splitlines()[-1] == "rearank: error: stopped by SIGTERM; no output written"
    assert list(tmp_path.iterdir()) == []
