"""Opening inputs (`-`, gzip) and writing outputs atomically (`-` for stdout).

A gzip input whose data is corrupt or cut short is an InputError naming the file, whichever reader
meets it (`open_binary` wraps the decompressor)."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import sys
import tempfile
import zlib
from collections.abc import Iterator
from typing import IO, Any

from rearank_cli.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"


def open_binary(path: str) -> IO[bytes]:
    """Open a file (or stdin for `-`) for binary reading, decompressing gzip by its magic bytes."""
    if path == "-":
        raw: IO[bytes] = sys.stdin.buffer
    else:
        try:
            raw = open(path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise InputError("file not found", path) from None
        except IsADirectoryError:
            raise InputError("is a directory, expected a file", path) from None
        except PermissionError:
            raise InputError("permission denied", path) from None
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[type-var]
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        return _GzipInput(path, buffered)  # type: ignore[return-value]
    return buffered


class _GzipInput(gzip.GzipFile):
    """A gzip input whose decompression errors (corrupt data: `zlib.error`, a bad header: `BadGzipFile`,
    a file cut short: `EOFError`) are InputErrors naming the file."""

    def __init__(self, path: str, fileobj: IO[bytes]) -> None:
        super().__init__(fileobj=fileobj, mode="rb")
        self.shown = path

    def _checked(self, method: str, *args: Any) -> bytes:
        try:
            data: bytes = getattr(super(), method)(*args)
            return data
        except EOFError as exc:
            raise InputError(f"gzip data cut short ({exc})", self.shown) from None
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise InputError(f"corrupt gzip data ({exc})", self.shown) from None

    def read(self, size: int | None = -1) -> bytes:
        return self._checked("read", size)

    def read1(self, size: int = -1) -> bytes:
        return self._checked("read1", size)

    def peek(self, n: int = 0) -> bytes:
        return self._checked("peek", n)

    def readline(self, size: int | None = -1) -> bytes:
        return self._checked("readline", size)


def open_text(path: str) -> IO[str]:
    """Open a UTF-8 text file (or stdin for `-`), gzip or plain."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", newline=None)


def iter_lines(path: str) -> Iterator[tuple[int, str]]:
    """Yield `(line_number, line)` (1-based, newline stripped) of a text input."""
    with open_text(path) as handle:
        try:
            for number, line in enumerate(handle, 1):
                yield number, line.rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise InputError(f"not valid UTF-8 text ({exc.reason})", path) from None
        except (OSError, EOFError) as exc:
            raise InputError(f"cannot read ({exc})", path) from None


def current_umask() -> int:
    """The process umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to `path` through a temporary file renamed into place only on success.

    `-` writes to stdout. A path ending in `.gz` is gzip-compressed. On any exception the
    temporary file is removed, so a failed run never leaves a partial output behind.
    """
    binary = "b" in mode
    if path == "-":
        stream = sys.stdout.buffer if binary else sys.stdout
        yield stream
        stream.flush()
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs get the usual permissions
        with os.fdopen(fd, "wb") as raw:
            sink: IO[bytes] = (gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)  # type: ignore[assignment]
                               if path.endswith(".gz") else raw)
            with contextlib.ExitStack() as stack:
                if sink is not raw:
                    stack.enter_context(sink)
                if binary:
                    yield sink
                else:
                    text = io.TextIOWrapper(sink, encoding="utf-8", newline="\n", write_through=False)
                    yield text
                    text.flush()
                    text.detach()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def staged_output(path: str, mode: str = "w") -> Iterator[IO[Any]]:
    """`atomic_output` for an output written bit by bit: `-` too is staged (in an anonymous temporary
    file, copied to stdout on success), so a failed job never leaves a part of its output anywhere."""
    if path != "-":
        with atomic_output(path, mode) as out:
            yield out
        return
    with tempfile.TemporaryFile() as staged:
        if "b" in mode:
            yield staged
        else:
            text = io.TextIOWrapper(staged, encoding="utf-8", newline="\n")
            yield text
            text.flush()
            text.detach()
        staged.seek(0)
        with atomic_output("-", "wb") as out:
            while block := staged.read(1 << 20):
                out.write(block)
