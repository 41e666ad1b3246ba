"""One writer per output: an exclusive `flock` on `PATH.lock`, held while a job writes PATH.

`rerank` holds its journal's lock, `train` its output folder's, `merge` its output's, from before
they read or write anything until they end. A second process that wants the same lock exits at once
with `Busy` (exit status 2), naming the file and the holder's pid and host. The kernel drops the lock
when its process dies however it dies (kill -9, a node that reboots, a SLURM requeue), so `--resume`
right after always gets it. The lock file holds the holder's pid, host and start time and is removed
when the holder finishes.

Where the filesystem has no `flock` (NFS mounted with `nolock` locks only on one node; Lustre without
the `flock` mount option answers ENOSYS; a few FUSE mounts refuse it), the job warns once and runs
without the check: one writer per file is then up to the user.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator

from rearank_cli.errors import InputError

log = logging.getLogger("rearank")

#: errors of `flock` that mean "this filesystem cannot lock", not "someone holds it"
UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class Busy(InputError):
    """Another process holds the lock of this output (exit status 2, before any work)."""


def lock_path(path: str) -> str:
    """The lock file of `path` (a file or a folder): `PATH.lock` beside it."""
    return os.path.abspath(path).rstrip(os.sep) + ".lock"


@contextlib.contextmanager
def exclusive(path: str | None, what: str, flag: str) -> Iterator[None]:
    """Hold the one-writer lock of `path` for the block (nothing for None or `-`).

    `what` names the file in messages ("the journal"), `flag` the option that picks it ("-o/--trace").
    Raises `Busy` when another process holds it.
    """
    if path is None or path == "-":
        yield
        return
    lock = lock_path(path)
    fd = _acquire(lock, path, what, flag)
    try:
        yield
    finally:
        if fd is not None:
            _release(lock, fd)


def _acquire(lock: str, path: str, what: str, flag: str) -> int | None:
    """Lock `lock` (created if needed); None when the filesystem cannot lock."""
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise Busy(f"{what} is in use by another rearank process ({holder}); wait for it to end, or give "
                       f"another {flag}", path) from None
        except OSError as exc:
            os.close(fd)
            if exc.errno not in UNSUPPORTED:
                raise
            log.warning("%s: this filesystem cannot lock %s (%s); running without the one-writer check: make sure "
                        "no other process writes it", path, lock, os.strerror(exc.errno or 0))
            return None
        if _still_there(lock, fd):  # not a lock file its last holder removed as we opened it
            break
        os.close(fd)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode(), 0)
    return fd


def _still_there(lock: str, fd: int) -> bool:
    """Whether the locked descriptor is still the file at `lock`."""
    try:
        now = os.stat(lock)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)


def _holder(fd: int, tries: int = 20) -> str:
    """Who holds the lock, as its file says (it may be a moment before the holder writes it)."""
    for _ in range(tries):
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.05)
    return "pid unknown"


def _release(lock: str, fd: int) -> None:
    """Remove the lock file, then unlock (a process waiting on the old file then sees it is gone)."""
    with contextlib.suppress(OSError):
        if _still_there(lock, fd):
            os.unlink(lock)
    os.close(fd)
