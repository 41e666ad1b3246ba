"""Provenance shared by every output that a long job writes: package versions and input digests.

Versions are read from package metadata, so recording them imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import sys
from collections.abc import Iterable

from rearank_cli import __version__


def installed(packages: Iterable[str]) -> dict[str, str]:
    """`{package: version}` for those of `packages` that are installed."""
    found = {}
    for name in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def versions(packages: Iterable[str] = ()) -> dict[str, str]:
    """rearank's and Python's versions plus those of the installed `packages`."""
    return {"rearank-cli": __version__, "python": sys.version.split()[0], **installed(packages)}


def file_sha256(path: str | None) -> str | None:
    """sha256 of a file's bytes (None for stdin, a directory or no path)."""
    if not path or path == "-" or not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_sha256(root: str, names: Iterable[str]) -> tuple[str, dict[str, str]]:
    """One digest over several files of a folder (an adapter, a model), independent of listing order:
    sha256 of the sorted `name<TAB>sha256` lines; also returns each file's own sha256."""
    files = {name: file_sha256(os.path.join(root, name)) or "" for name in sorted(set(names))}
    lines = "".join(f"{name}\t{digest}\n" for name, digest in files.items())
    return hashlib.sha256(lines.encode()).hexdigest(), files
