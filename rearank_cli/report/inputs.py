"""Finding and reading what a report shows: runs, their journals and manifests, the first-stage run,
query and passage texts.

Journals are read as plain JSON lines (the fields the README documents), never through the reranker's
own classes, and never modified: a torn last line (a killed run) is skipped, not cut off.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from rearank_cli import formats
from rearank_cli.errors import InputError
from rearank_cli.formats import Run, read_candidates, read_topics, write_run
from rearank_cli.formats.jsonl import parse_json_object
from rearank_cli.rerank.plan import QueryInput, RerankSettings
from rearank_cli.rerank.strategies import new_state
from rearank_cli.settings.rerank import RerankOptions
from rearank_cli.windows import schedule

log = logging.getLogger("rearank")

Record = dict[str, Any]


@dataclass
class Journal:
    """A journal as written by `rearank rerank`: the header line and the window records in file order."""

    path: str
    header: dict[str, Any]
    records: list[Record]
    torn: bool = False

    @property
    def settings(self) -> dict[str, Any]:
        """The settings the header records (prompt, window, step, depth, ...)."""
        return self.header.get("settings") or {}

    @property
    def prompt(self) -> str:
        """The prompt the windows were built with (`rearank` for journals that do not say)."""
        return str(self.settings.get("prompt") or "rearank")


def read_journal(path: str) -> Journal:
    """Read a journal; an unparsable line is an InputError naming it, except a torn last line."""
    try:
        with open(path, "rb") as handle:
            lines = handle.read().split(b"\n")
    except OSError as exc:
        raise InputError(f"cannot read the trace ({exc.strerror})", path) from None
    torn = bool(lines and lines[-1].strip())  # a complete journal ends with a newline
    rows: list[tuple[int, Record]] = []
    for number, line in enumerate(lines[:-1] if torn else lines, 1):
        if not line.strip():
            continue
        rows.append((number, parse_json_object(line, path, number)))
    if not rows or rows[0][1].get("type") != "header":
        raise InputError("not a rearank journal (no header line)", path, 1)
    records = [record for _, record in rows[1:] if record.get("type") == "window"]
    for number, record in rows[1:]:
        if record.get("type") == "window":
            _check_record(record, path, number)
    if torn:
        log.warning("%s: ignoring a torn last line left by an interrupted run", path)
    return Journal(path, rows[0][1], records, torn)


def _check_record(record: Record, path: str, number: int) -> None:
    for key in ("qid", "pass", "index", "start", "end", "docids", "permutation"):
        if key not in record:
            raise InputError(f"window record without {key!r}", path, number)
    size = len(record["docids"])
    if record["end"] - record["start"] != size or sorted(record["permutation"]) != list(range(size)):
        raise InputError("window record whose docids, span and permutation disagree", path, number)
    record["qid"] = str(record["qid"])


# ---------------------------------------------------------------- which window records count


@dataclass
class Chain:
    """The windows that produced one query's order, in the order they were applied."""

    windows: list[Record]
    planned: int | None
    order: list[str] | None
    superseded: int = 0

    @property
    def finished(self) -> bool:
        """True when every planned window is in the chain (unknown plans count as finished)."""
        return self.planned is None or len(self.windows) >= self.planned


def window_chains(journal: Journal, first_stage: Run | None) -> dict[str, Chain]:
    """Per query, the window records that made its final order.

    A resumed journal can hold several records for one window (a failed try, then a retry; windows
    redone because an earlier one changed). Replayed on the first-stage order, each window takes the
    last successful record whose input docids match the current order (else a matching failed one,
    which kept the order), as `--resume` does; the first window with no matching record ends the
    chain (an interrupted run). Without a first-stage run each window takes its last successful record.
    A tdpart journal is replayed through the strategy itself (`tdpart_chains`).
    """
    if first_stage is not None and journal.settings.get("strategy") == "tdpart":
        return tdpart_chains(journal, first_stage)
    grouped: dict[str, dict[tuple[int, int], list[Record]]] = defaultdict(lambda: defaultdict(list))
    for record in journal.records:
        grouped[record["qid"]][(int(record["pass"]), int(record["index"]))].append(record)
    chains = {}
    for qid, by_window in grouped.items():
        hits = first_stage.get(qid) if first_stage is not None else None
        order = [docid for docid, _ in hits[: _depth(journal, len(hits))]] if hits else None
        chain = Chain([], _planned(journal, len(hits)) if hits else None, order)
        for key in sorted(by_window):
            picked = _pick(by_window[key], order)
            if picked is None:
                break
            chain.windows.append(picked)
            if order is not None:
                start, end = picked["start"], picked["end"]
                order[start:end] = [picked["docids"][i] for i in picked["permutation"]]
        chain.superseded = sum(len(group) for group in by_window.values()) - len(chain.windows)
        chains[qid] = chain
    return chains


def tdpart_chains(journal: Journal, first_stage: Run) -> dict[str, Chain]:
    """Per query of a tdpart journal, the records that made its order, replayed through the strategy's
    state machine as `--resume` does: each ready window takes the last successful record with its round,
    slots and input docids (else a matching failed one), round by round, until none matches."""
    settings = journal_rerank_settings(journal)
    grouped: dict[str, dict[tuple[int, int, int], list[Record]]] = defaultdict(lambda: defaultdict(list))
    for record in journal.records:
        grouped[record["qid"]][(int(record["pass"]), int(record["start"]), int(record["end"]))].append(record)
    chains = {}
    for qid, by_key in grouped.items():
        state = new_state(QueryInput(qid, "", list(first_stage.get(qid) or []), {}), settings)
        windows: list[Record] = []
        while not state.done:
            ready = [(window, _pick_matching(by_key.get(window.key[1:], []), list(window.docids)))
                     for window in state.ready()]
            found = [(window, record) for window, record in ready if record is not None]
            if not found:
                break
            for window, record in found:
                state.apply(window, record["permutation"])
                windows.append(record)
        planned = len(windows) + state.remaining()
        superseded = sum(len(group) for group in by_key.values()) - len(windows)
        chains[qid] = Chain(windows, planned, state.final_docids(), superseded)
    return chains


def journal_rerank_settings(journal: Journal) -> RerankSettings:
    """The `RerankSettings` a journal header records (what replaying its windows needs)."""
    recorded = journal.settings
    known = {"window", "step", "depth", "passes", "window_schedule", "strategy", "tdpart_pivot", "tdpart_top_k",
             "tdpart_budget"}
    return RerankSettings(**{key: value for key, value in recorded.items() if key in known and value is not None})


def _pick_matching(group: list[Record], docids: list[str]) -> Record | None:
    matching = [r for r in group if r["docids"] == docids]
    good = [r for r in matching if not r.get("failed")]
    chosen = good or matching
    return chosen[-1] if chosen else None


def _pick(group: list[Record], order: list[str] | None) -> Record | None:
    if order is None:
        good = [r for r in group if not r.get("failed")]
        return (good or group)[-1]
    span = order[group[0]["start"] : group[0]["end"]]
    matching = [r for r in group if r["docids"] == span]
    good = [r for r in matching if not r.get("failed")]
    chosen = good or matching
    return chosen[-1] if chosen else None


def _depth(journal: Journal, n: int) -> int:
    return min(int(journal.settings.get("depth") or n), n)


def _planned(journal: Journal, n: int) -> int | None:
    settings = journal.settings
    try:
        spans = schedule(str(settings.get("window_schedule") or RerankOptions.window_schedule), _depth(journal, n),
                         int(settings["window"]), int(settings["step"]))
    except (KeyError, TypeError, ValueError):
        return None
    return len(spans) * int(settings.get("passes") or 1)


def rebuild_run(chains: dict[str, Chain], first_stage: Run) -> Run:
    """The run an interrupted job would have written: each query's replayed head (the first-stage
    order where no window finished) above its first-stage tail, scored n..1 as `--score-mode rank`."""
    run: Run = {}
    for qid, hits in first_stage.items():
        chain = chains.get(qid)
        head = chain.order if chain is not None and chain.order is not None else []
        docids = head + [docid for docid, _ in hits[len(head) :]]
        run[qid] = [(docid, float(len(docids) - i)) for i, docid in enumerate(docids)]
    return run


# ---------------------------------------------------------------- one reranked run and its files


@dataclass
class RunFiles:
    """A reranked run and the files `rerank` wrote next to it."""

    path: str
    trace: str | None
    manifest_path: str | None
    manifest: dict[str, Any] | None
    journal: Journal | None = None
    #: the file that is evaluated: `path`, or a run rebuilt from the journal when `path` is missing
    eval_path: str = ""
    rebuilt: bool = False
    chains: dict[str, Chain] = field(default_factory=dict)
    order: dict[str, list[str]] = field(default_factory=dict)
    mismatched: list[str] = field(default_factory=list)


def locate(path: str, trace: str | None) -> RunFiles:
    """The run at `path` with its trace (`--trace`, else `RUN.trace.jsonl` if present) and manifest."""
    if trace is None and os.path.isfile(path + ".trace.jsonl"):
        trace = path + ".trace.jsonl"
    if trace is not None and not os.path.isfile(trace):
        raise InputError("trace not found", trace)
    if not os.path.isfile(path) and trace is None:
        raise InputError("run not found (and no RUN.trace.jsonl journal beside it to rebuild it from)", path)
    manifest_path = path + ".manifest.json"
    manifest = None
    if os.path.isfile(manifest_path):
        try:
            with open(manifest_path, "rb") as handle:
                manifest = orjson.loads(handle.read())
        except orjson.JSONDecodeError as exc:
            raise InputError(f"invalid manifest ({exc})", manifest_path) from None
    return RunFiles(path, trace, manifest_path if manifest is not None else None, manifest)


def manifest_input(files: Sequence[RunFiles], name: str) -> str | None:
    """An input path (`run`, `topics`, `corpus`, `candidates`) as recorded by the first manifest that
    has it, found as written (relative to the working directory) or relative to the manifest."""
    for run in files:
        recorded = ((run.manifest or {}).get("inputs") or {}).get(name) or {}
        path = recorded.get("path") if isinstance(recorded, dict) else None
        if not path or path == "-":
            continue
        for candidate in (path, os.path.join(os.path.dirname(run.manifest_path or ""), path)):
            if os.path.exists(candidate):
                return candidate
        log.warning("%s: recorded %s %s not found", run.manifest_path, name, path)
    return None


def journal_run(files: Sequence[RunFiles]) -> str | None:
    """The first-stage run a journal header records (an interrupted job leaves no manifest)."""
    for run in files:
        path = (run.journal.header.get("run") if run.journal is not None else None) or None
        if path and path != "-" and os.path.isfile(path):
            return str(path)
    return None


@dataclass
class Texts:
    """Query texts and raw passage texts, where the report could find them."""

    topics: dict[str, str] = field(default_factory=dict)
    passages: dict[str, str] = field(default_factory=dict)
    source: str | None = None


def load_texts(topics: str | None, corpus: str | None, candidates: str | None, wanted: set[str]) -> Texts:
    """Query and passage texts from `--candidates`, or `--topics` plus `--corpus` (JSONL or index), read by
    rerank's own loader; a report also takes either half alone (query texts only, or passages only)."""
    if candidates is not None or (topics is not None and corpus is not None):
        from rearank_cli.rerank.inputs import open_texts

        source = open_texts(None if candidates else topics, None if candidates else corpus, candidates)
        return Texts(source.topics, source.texts_for(wanted), candidates or f"{topics}, {corpus}")
    texts = Texts(source=topics or corpus)
    if topics is not None:
        texts.topics = read_topics(topics)
    if corpus is not None:
        from rearank_cli.texts import fetch_texts

        texts.passages = fetch_texts(corpus, wanted)
    return texts


def first_stage_from_candidates(candidates: str, folder: str) -> str:
    """Write the first-stage lists of a candidates file as a TREC run in `folder` (for `eval`)."""
    path = os.path.join(folder, "first-stage.trec")
    write_run(path, read_candidates(candidates).run, "first-stage")
    return path


def read_first_stage(path: str | None) -> Run | None:
    """The first-stage run in the order `rerank` read it (ties in file order; None without one)."""
    return formats.read_first_stage(path) if path is not None else None
