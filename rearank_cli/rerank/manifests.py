"""The manifests of `rearank rerank` and `rearank merge`, typed, frozen and versioned, with their JSON in
one place (`to_json`, `from_json`, as `rerank.records`): `RerankManifest` (`OUT.manifest.json` of a rerank
run, its `summary` a `records.RunSummary`) and `MergeManifest` (that of `rearank merge`, which names every
shard's run, manifest and journal in `ShardFiles`). `read_manifest` reads either one from a file (by its
`schema`; a newer version is refused), `write_manifest` writes one atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from rearank_cli.errors import InputError
from rearank_cli.formats.textio import atomic_output
from rearank_cli.provenance import SCHEMAS, Provenance, check_schema
from rearank_cli.provenance import text_or_none as _str
from rearank_cli.rerank.records import JSON, RunSummary, WindowCounts


@dataclass(frozen=True)
class RerankManifest:
    """`OUT.manifest.json` of `rearank rerank`: provenance, where the outputs went, the model, backend,
    prompt and settings, what was skipped, and the run summary."""

    provenance: Provenance
    output: str
    trace: str | None = None
    model: str | None = None
    #: the `--lora` adapter: path, sha256, files, rank, alpha, base_model (None: no adapter)
    lora: Mapping[str, Any] | None = None
    #: the backend's own description (`backend` name, model, versions that matter)
    backend: Mapping[str, Any] = field(default_factory=dict)
    prompt: str | None = None
    prompt_hash: str | None = None
    #: the rerank settings (`RerankSettings.as_dict()`)
    settings: Mapping[str, Any] = field(default_factory=dict)
    score_mode: str | None = None
    tag: str | None = None
    shard: str | None = None
    skipped_qids: tuple[str, ...] = ()
    missing_docs: int = 0
    empty_passages: int = 0
    summary: RunSummary = field(default_factory=RunSummary)
    job_wall_s: float = 0.0
    #: the window strategy, its parameters, windows and critical path per query (`strategies.summary`;
    #: empty in manifests written before strategies: the sliding window)
    strategy: Mapping[str, Any] = field(default_factory=dict)

    KIND = "rerank.manifest"

    def to_json(self) -> JSON:
        """The manifest file's JSON object."""
        return {
            **self.provenance.to_json(), "output": self.output, "trace": self.trace, "model": self.model,
            "lora": None if self.lora is None else dict(self.lora), "backend": dict(self.backend),
            "prompt": self.prompt, "prompt_hash": self.prompt_hash, "settings": dict(self.settings),
            "score_mode": self.score_mode, "tag": self.tag, "shard": self.shard,
            "skipped_qids": list(self.skipped_qids), "missing_docs": self.missing_docs,
            "empty_passages": self.empty_passages, "summary": self.summary.to_json(), "strategy": dict(self.strategy),
            "job_wall_s": self.job_wall_s,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RerankManifest:
        """A manifest read back (TypeError or ValueError when a field is malformed)."""
        backend = data.get("backend")
        return cls(
            Provenance.from_json(data), str(data.get("output") or ""), _str(data.get("trace")), _str(data.get("model")),
            None if data.get("lora") is None else dict(data["lora"]),
            dict(backend) if isinstance(backend, Mapping) else {}, _str(data.get("prompt")),
            _str(data.get("prompt_hash")), dict(data.get("settings") or {}), _str(data.get("score_mode")),
            _str(data.get("tag")), _str(data.get("shard")), tuple(str(q) for q in data.get("skipped_qids") or ()),
            int(data.get("missing_docs") or 0), int(data.get("empty_passages") or 0),
            RunSummary.from_json(data.get("summary") or {}), float(data.get("job_wall_s") or 0.0),
            dict(data.get("strategy") or {}),
        )


@dataclass(frozen=True)
class ShardFiles:
    """One shard of a merged run: its run as given to `merge`, and its manifest and journal where `merge`
    found them (None: not found)."""

    run: str
    manifest: str | None = None
    trace: str | None = None

    def to_json(self) -> JSON:
        """One entry of the merge manifest's `shards`."""
        return {"run": self.run, "manifest": self.manifest, "trace": self.trace}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShardFiles:
        """An entry read back (KeyError without `run`)."""
        return cls(str(data["run"]), _str(data.get("manifest")), _str(data.get("trace")))


@dataclass(frozen=True)
class MergeManifest:
    """`OUT.manifest.json` of `rearank merge`: provenance, the shard runs, the queries merged, the windows
    summed over the shard manifests, the model(s) and prompt(s) they name, and every shard's files."""

    provenance: Provenance
    merged_from: tuple[str, ...] = ()
    queries: int = 0
    shard_manifests: int = 0
    #: the shards' window counts summed (None: no shard had a manifest; written as `{}`)
    windows: WindowCounts | None = None
    models: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    #: per shard, in the order given: its run, manifest and journal (an older merge manifest has none)
    shards: tuple[ShardFiles, ...] = ()

    KIND = "merge.manifest"

    def to_json(self) -> JSON:
        """The manifest file's JSON object."""
        return {
            **self.provenance.to_json(), "merged_from": list(self.merged_from), "queries": self.queries,
            "shard_manifests": self.shard_manifests, "windows": {} if self.windows is None else self.windows.to_json(),
            "models": list(self.models), "prompts": list(self.prompts),
            "shards": [shard.to_json() for shard in self.shards],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MergeManifest:
        """A manifest read back (an older one without `shards` lists each run of `merged_from` alone)."""
        merged_from = tuple(str(path) for path in data.get("merged_from") or ())
        shards = tuple(ShardFiles.from_json(item) for item in data.get("shards") or ()) or tuple(
            ShardFiles(path) for path in merged_from)
        windows = data.get("windows")
        return cls(Provenance.from_json(data), merged_from, int(data.get("queries") or 0),
                   int(data.get("shard_manifests") or 0), WindowCounts.from_json(windows) if windows else None,
                   tuple(str(m) for m in data.get("models") or ()), tuple(str(p) for p in data.get("prompts") or ()),
                   shards)


Manifest = RerankManifest | MergeManifest


def manifest_from_json(data: Any, path: str) -> Manifest:
    """A rerank or merge manifest from its JSON (by its `schema`); InputError naming `path` otherwise."""
    if not isinstance(data, dict):
        raise InputError("not a rearank manifest (expected a JSON object)", path)
    schema = str(data.get("schema") or "")
    for kind in (RerankManifest, MergeManifest):
        if schema.partition("/")[0] == SCHEMAS[kind.KIND].partition("/")[0]:
            problem = check_schema(schema, kind.KIND)
            if problem:
                raise InputError(problem, path)
            try:
                return kind.from_json(data)
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"invalid manifest ({type(exc).__name__}: {exc})", path) from None
    raise InputError(f"not a rerank or merge manifest (schema {schema or 'missing'})", path)


def read_manifest(path: str) -> Manifest:
    """The rerank or merge manifest at `path` (InputError naming it when unreadable or malformed)."""
    try:
        with open(path, "rb") as handle:
            data = orjson.loads(handle.read())
    except OSError as exc:
        raise InputError(f"cannot read the manifest ({exc.strerror})", path) from None
    except orjson.JSONDecodeError as exc:
        raise InputError(f"invalid manifest ({exc})", path) from None
    return manifest_from_json(data, path)



def write_manifest(path: str, manifest: Manifest) -> None:
    """Write a manifest atomically, as indented JSON."""
    with atomic_output(path, "wb") as out:
        out.write(orjson.dumps(manifest.to_json(), option=orjson.OPT_INDENT_2) + b"\n")
