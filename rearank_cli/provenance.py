"""Provenance shared by every output that a long job writes: package versions and input digests.

Versions are read from package metadata, so recording them imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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


def block(kind: str, inputs: Mapping[str, str | None], packages: Iterable[str] = (),
          command: Sequence[str] | None = None) -> dict[str, Any]:
    """The provenance block every manifest starts with: its `schema` (`rearank.KIND/N`, see SCHEMAS),
    rearank's version, the command line, the time, the inputs (path and sha256; None paths left out)
    and the package versions."""
    return {
        "schema": SCHEMAS[kind],
        "rearank_version": __version__,
        "command": list(sys.argv if command is None else command),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "inputs": {name: {"path": path, "sha256": file_sha256(path)} for name, path in inputs.items()
                   if path is not None},
        "versions": versions(packages),
    }


#: the schema of each record rearank writes to disk; bump N when a field changes meaning or goes away
SCHEMAS = {
    "rerank.manifest": "rearank.rerank.manifest/2",
    "rerank.journal": "rearank.rerank.journal/1",
    "merge.manifest": "rearank.merge.manifest/1",
    "retrieve.manifest": "rearank.retrieve.manifest/1",
    "index.manifest": "rearank.index.manifest/1",
    "eval.json": "rearank.eval/1",
    "augment.summary": "rearank.augment.summary/2",
    "train.manifest": "rearank.train.manifest/1",
}
