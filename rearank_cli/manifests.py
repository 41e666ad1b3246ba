"""The summaries and manifests of `index`, `retrieve`, `eval --format json`, `augment`, `train` and `doctor
--format json` as typed, frozen records, with their JSON in one place (`to_json`, `from_json`, `dump`), as
`rerank.manifests` holds those of `rerank` and `merge`.

Each record's fields are its file's keys in the order they are written: `provenance` stands for the block
every manifest starts with (`provenance.Provenance`), a field marked `OPTIONAL` is left out when None, and a
field marked `SPREAD` holds keys written at its place without a name of their own (index's counters). `dump`
gives the file's bytes, laid out as each command has always written them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import orjson

from rearank_cli.errors import InputError
from rearank_cli.provenance import SCHEMAS, Provenance, check_schema

JSON = dict[str, Any]
R = TypeVar("R", bound="Record")

#: field metadata: left out of the JSON when None
OPTIONAL = {"optional": True}
#: field metadata: a mapping whose keys are written at the field's place (every key no other field names)
SPREAD = {"spread": True}


@dataclasses.dataclass(frozen=True)
class Record:
    """The JSON of a record from its fields (see the module's docstring)."""

    #: the SCHEMAS key of a record that starts with a provenance block ("" for none)
    KIND: ClassVar[str] = ""
    #: how the file is laid out: "orjson" (2-space indent), "orjson+nl" (and a final newline) or "json+nl"
    #: (Python's json, 2-space indent, ASCII, a final newline)
    LAYOUT: ClassVar[str] = "orjson+nl"

    def to_json(self) -> JSON:
        """The file's JSON object, keys in the order they are written."""
        out: JSON = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Provenance):
                out.update(value.to_json())
            elif field.metadata.get("spread"):
                out.update(value)
            elif value is not None or not field.metadata.get("optional"):
                out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    def dump(self) -> bytes:
        """The file's bytes."""
        if self.LAYOUT == "json+nl":
            return (json.dumps(self.to_json(), indent=2) + "\n").encode()
        text = orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2)
        return text + b"\n" if self.LAYOUT == "orjson+nl" else text

    @classmethod
    def from_json(cls: type[R], data: Mapping[str, Any]) -> R:
        """A record read back: InputError when its schema is another record's or newer than this rearank
        reads; a key the file lacks takes None (or, for a list, the empty tuple)."""
        known = {field.name for field in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        if cls.KIND:
            problem = check_schema(data.get("schema"), cls.KIND)
            if problem:
                raise InputError(problem)
            known |= set(Provenance(SCHEMAS[cls.KIND]).to_json())
        for field in dataclasses.fields(cls):
            if field.name == "provenance":
                values[field.name] = Provenance.from_json(data, SCHEMAS[cls.KIND])
            elif field.metadata.get("spread"):
                values[field.name] = {key: value for key, value in data.items() if key not in known}
            else:
                value = data.get(field.name)
                values[field.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)

    @classmethod
    def read(cls: type[R], path: str) -> R:
        """The record in file `path` (InputError naming the file when it is not one)."""
        try:
            with open(path, "rb") as handle:
                return cls.from_json(orjson.loads(handle.read()))
        except (OSError, orjson.JSONDecodeError, TypeError, ValueError) as exc:
            raise InputError(f"not a {cls.__name__} ({exc})", path) from None


@dataclasses.dataclass(frozen=True)
class IndexManifest(Record):
    """`INDEX/rearank-index.json`: provenance, settings, what was indexed, Anserini's counters, the corpora."""

    KIND = "index.manifest"

    provenance: Provenance
    settings: Mapping[str, Any] | None = dataclasses.field(default=None, metadata=OPTIONAL)
    collection: str = ""
    fields: tuple[str, ...] = ()
    documents: int = 0
    #: Anserini's counters (`indexed`, `empty`, `unindexable`, `skipped`, `errors`)
    counters: Mapping[str, int] = dataclasses.field(default_factory=dict, metadata=SPREAD)
    corpora: tuple[Mapping[str, Any], ...] = ()
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class RetrieveManifest(Record):
    """`OUT.manifest.json` of `rearank retrieve`: provenance, settings, the index, parameters, counts, timing."""

    KIND = "retrieve.manifest"

    provenance: Provenance
    settings: Mapping[str, Any] | None = dataclasses.field(default=None, metadata=OPTIONAL)
    index: str = ""
    index_dir: str = ""
    topics: str = ""
    queries: int = 0
    hits: int = 0
    queries_without_hits: int = 0
    k: int = 0
    k1: float = 0.0
    b: float = 0.0
    #: the fields searched and their boosts
    fields: Mapping[str, float] = dataclasses.field(default_factory=dict)
    remove_query: bool = False
    tag: str = ""
    threads: int = 0
    seconds: float = 0.0
    queries_per_second: float | None = None


@dataclasses.dataclass(frozen=True)
class EvalJson(Record):
    """`rearank eval --format json`: provenance, settings, the qrels, measures, significance and each run."""

    KIND = "eval.json"

    provenance: Provenance
    settings: Mapping[str, Any] | None = dataclasses.field(default=None, metadata=OPTIONAL)
    qrels: str = ""
    queries: int = 0
    relevance_level: int = 1
    aggregation: str = ""
    #: each measure: `name`, `trec_eval` (its trec_eval key), `depth`
    measures: tuple[Mapping[str, Any], ...] = ()
    max_docs: int | None = None
    baseline: str | None = None
    significance: Mapping[str, Any] | None = None
    runs: tuple[Mapping[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class AugmentSummary(Record):
    """`OUT.summary.json` of `rearank augment`: provenance, paths, settings, the prompt and the counts."""

    KIND = "augment.summary"
    LAYOUT = "orjson"

    provenance: Provenance
    kind: str = "augment"
    version: str = ""
    python: str = ""
    paths: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    format: str = ""
    prompt_hash: str = ""
    counts: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TrainManifest(Record):
    """`OUT_DIR/rearank_train.json`: provenance, settings, batch plan, reward, samples, the result, the
    prompts of the samples, (LoRA without merging) the adapter and the samples' best blind answer."""

    KIND = "train.manifest"
    LAYOUT = "json+nl"

    provenance: Provenance
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    batch: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    plan: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    reward: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    samples: Mapping[str, int] = dataclasses.field(default_factory=dict)
    result: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    prompts: Mapping[str, int] | None = dataclasses.field(default=None, metadata=OPTIONAL)
    adapter: Mapping[str, Any] | None = dataclasses.field(default=None, metadata=OPTIONAL)
    blind_answer: Mapping[str, Any] | None = dataclasses.field(default=None, metadata=OPTIONAL)


@dataclasses.dataclass(frozen=True)
class DoctorReport(Record):
    """`rearank doctor --format json`: the backend, whether it is ready, every check."""

    LAYOUT = "json+nl"

    backend: str = ""
    ready: bool = False
    checks: tuple[Mapping[str, Any], ...] = ()
