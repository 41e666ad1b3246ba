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
