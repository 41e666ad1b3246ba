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
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class InputFile:
    """One input of a job as its outputs record it: the path as given and the sha256 of its bytes (None for
    stdin, a folder or a file that was gone)."""

    path: str
    sha256: str | None = None


@dataclass(frozen=True)
class Provenance:
    """The block every manifest (and the journal header) starts with: `schema` (`rearank.KIND/N`, see
    SCHEMAS), rearank's version, the command line, when it ran, the inputs and the package versions."""

    schema: str
    rearank_version: str | None = None
    command: tuple[str, ...] = ()
    created: str | None = None
    inputs: Mapping[str, InputFile] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def now(cls, kind: str, inputs: Mapping[str, str | None], packages: Iterable[str] = (),
            command: Sequence[str] | None = None) -> Provenance:
        """The provenance of a job of `kind` (a SCHEMAS key) starting now: inputs hashed (None paths left
        out), versions of rearank, Python and the installed `packages`."""
        return cls(SCHEMAS[kind], __version__, tuple(sys.argv if command is None else command),
                   time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   {name: InputFile(path, file_sha256(path)) for name, path in inputs.items() if path is not None},
                   versions(packages))

    def to_json(self) -> dict[str, Any]:
        """The block's JSON fields, in the order they are written."""
        return {
            "schema": self.schema,
            "rearank_version": self.rearank_version,
            "command": list(self.command),
            "created": self.created,
            "inputs": {name: {"path": item.path, "sha256": item.sha256} for name, item in self.inputs.items()},
            "versions": dict(self.versions),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], schema: str = "") -> Provenance:
        """The block of a record read back (fields an older file lacks take their defaults; `schema`: what
        to assume when the record names none). TypeError or ValueError when a field is malformed."""
        inputs = {}
        for name, item in dict(data.get("inputs") or {}).items():
            if isinstance(item, Mapping) and item.get("path") is not None:
                inputs[str(name)] = InputFile(str(item["path"]), text_or_none(item.get("sha256")))
        return cls(str(data.get("schema") or schema), text_or_none(data.get("rearank_version")),
                   tuple(str(part) for part in data.get("command") or ()), text_or_none(data.get("created")), inputs,
                   {str(k): str(v) for k, v in dict(data.get("versions") or {}).items()})

    def input_path(self, name: str) -> str | None:
        """The recorded path of input `name` (None when not recorded or read from stdin)."""
        item = self.inputs.get(name)
        return item.path if item is not None and item.path != "-" else None


def text_or_none(value: Any) -> str | None:
    """`value` as text, None staying None (for optional fields read back from JSON)."""
    return None if value is None else str(value)


def block(kind: str, inputs: Mapping[str, str | None], packages: Iterable[str] = (),
          command: Sequence[str] | None = None) -> dict[str, Any]:
    """`Provenance.now(...)` as the JSON block a manifest starts with."""
    return Provenance.now(kind, inputs, packages, command).to_json()


def check_schema(schema: str | None, kind: str) -> str | None:
    """Why a record whose `schema` is given cannot be read as `kind` (a SCHEMAS key), or None when it can:
    the same kind at a version up to ours (a record without a schema is read as the oldest version)."""
    if not schema:
        return None
    name, _, version = SCHEMAS[kind].partition("/")
    found, _, found_version = schema.partition("/")
    if found != name:
        return f"a {found} record, not a {name}"
    if not found_version.isdigit() or int(found_version) > int(version):
        return f"written as {schema}, newer than this rearank reads ({SCHEMAS[kind]}): upgrade rearank"
    return None


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
