"""What a report shows of one reranked run, as plain data: the run and the files `rerank` (and `merge`)
wrote next to it, the window chains that made each query's order, and the texts found.

Journals are read by `rerank.journal.read_journal` (a torn last line is left out, the file never
modified); finding and reading the files is `jobs.report`'s part.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from rearank_cli.formats import Run
from rearank_cli.rerank.manifests import MergeManifest, RerankManifest
from rearank_cli.rerank.plan import QueryInput, RerankSettings
from rearank_cli.rerank.records import JournalHeader, JournalSettings, WindowRecord
from rearank_cli.rerank.strategies.registry import new_state, strategy_of
from rearank_cli.settings.rerank import RerankOptions

# ---------------------------------------------------------------- which window records count


@dataclass
class Chain:
    """The windows that produced one query's order, in the order they were applied."""

    windows: list[WindowRecord]
    planned: int | None
    order: list[str] | None
    superseded: int = 0

    @property
    def finished(self) -> bool:
        """True when every planned window is in the chain (unknown plans count as finished)."""
        return self.planned is None or len(self.windows) >= self.planned


def window_chains(records: Sequence[WindowRecord], settings: JournalSettings,
                  first_stage: Run | None) -> dict[str, Chain]:
    """Per query, the window records that made its final order.

    A resumed journal can hold several records for one window (a failed try, then a retry; windows
    redone because an earlier one changed). Replayed on the first-stage order, each window takes the
    last successful record whose input docids match the current order (else a matching failed one,
    which kept the order), as `--resume` does; the first window with no matching record ends the
    chain (an interrupted run). Without a first-stage run each window takes its last successful record.
    A journal of a strategy whose windows are not list positions is replayed through the strategy itself
    (`state_chains`).
    """
    if first_stage is not None and not strategy_of(settings.strategy).positional:
        return state_chains(records, settings, first_stage)
    grouped: dict[str, dict[tuple[int, int], list[WindowRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        grouped[record.qid][(record.pass_, record.index)].append(record)
    chains = {}
    for qid, by_window in grouped.items():
        hits = first_stage.get(qid) if first_stage is not None else None
        order = [docid for docid, _ in hits[: _depth(settings, len(hits))]] if hits else None
        chain = Chain([], _planned(settings, len(hits)) if hits else None, order)
        for key in sorted(by_window):
            picked = _pick(by_window[key], order)
            if picked is None:
                break
            chain.windows.append(picked)
            if order is not None:
                order[picked.start : picked.end] = picked.order
        chain.superseded = sum(len(group) for group in by_window.values()) - len(chain.windows)
        chains[qid] = chain
    return chains


def state_chains(records: Sequence[WindowRecord], settings: JournalSettings, first_stage: Run) -> dict[str, Chain]:
    """Per query of a journal of a strategy whose windows are not list positions, the records that made
    its order, replayed through the strategy's state machine as `--resume` does: each ready window takes
    the last successful record with its round, slots and input docids (else a matching failed one),
    round by round, until none matches."""
    rerank = journal_rerank_settings(settings)
    grouped: dict[str, dict[tuple[int, int, int], list[WindowRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        grouped[record.qid][(record.pass_, record.start, record.end)].append(record)
    chains = {}
    for qid, by_key in grouped.items():
        state = new_state(QueryInput(qid, "", list(first_stage.get(qid) or []), {}), rerank)
        windows: list[WindowRecord] = []
        while not state.done:
            ready = [(window, _pick_matching(by_key.get(window.key[1:], []), window.docids))
                     for window in state.ready()]
            found = [(window, record) for window, record in ready if record is not None]
            if not found:
                break
            for window, record in found:
                state.apply(window, record.permutation)
                windows.append(record)
        planned = len(windows) + state.remaining()
        superseded = sum(len(group) for group in by_key.values()) - len(windows)
        chains[qid] = Chain(windows, planned, state.final_docids(), superseded)
    return chains


def journal_rerank_settings(settings: JournalSettings) -> RerankSettings:
    """The `RerankSettings` a journal header records (what replaying its windows needs; defaults where it
    records nothing)."""
    recorded = {key: value for key, value in settings.to_json().items() if value is not None}
    names = {item.name for item in fields(RerankSettings)} - {"prompt", "sampling", "prompt_params", "tokenizer"}
    return RerankSettings(**{key: value for key, value in recorded.items() if key in names})


def _pick_matching(group: list[WindowRecord], docids: tuple[str, ...]) -> WindowRecord | None:
    matching = [r for r in group if tuple(r.docids) == tuple(docids)]
    good = [r for r in matching if not r.failed]
    chosen = good or matching
    return chosen[-1] if chosen else None


def _pick(group: list[WindowRecord], order: list[str] | None) -> WindowRecord | None:
    if order is None:
        good = [r for r in group if not r.failed]
        return (good or group)[-1]
    span = tuple(order[group[0].start : group[0].end])
    matching = [r for r in group if r.docids == span]
    good = [r for r in matching if not r.failed]
    chosen = good or matching
    return chosen[-1] if chosen else None


def _depth(settings: JournalSettings, n: int) -> int:
    return min(settings.depth or n, n)


def _planned(settings: JournalSettings, n: int) -> int | None:
    """Windows planned for a query of `n` hits (None when the journal does not say how it was cut)."""
    if settings.window is None or settings.step is None:
        return None
    hits = [(f"d{i}", float(n - i)) for i in range(n)]
    try:
        return new_state(QueryInput("", "", hits, {}), journal_rerank_settings(settings)).remaining()
    except ValueError:
        return None


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
    """A reranked run and the files `rerank` (and, for a run merged from shards, `merge`) wrote next to it."""

    path: str
    #: the journals of the run: its own, or one per shard of a merged run
    traces: list[str] = field(default_factory=list)
    #: the rerank manifest read (for a merged run: the first shard's that was found) and its path
    manifest_path: str | None = None
    manifest: RerankManifest | None = None
    #: the merge manifest of a run merged from shards, and its path
    merge_path: str | None = None
    merge: MergeManifest | None = None
    #: the first journal's header, and the window records of every journal (None: no journal)
    header: JournalHeader | None = None
    records: list[WindowRecord] | None = None
    #: the file that is evaluated: `path`, or a run rebuilt from the journal when `path` is missing
    eval_path: str = ""
    rebuilt: bool = False
    chains: dict[str, Chain] = field(default_factory=dict)
    order: dict[str, list[str]] = field(default_factory=dict)
    mismatched: list[str] = field(default_factory=list)

    @property
    def trace(self) -> str | None:
        """The journal(s) as the page names them (None: no journal)."""
        return ", ".join(self.traces) or None

    @property
    def prompt(self) -> str:
        """The prompt family of the run's windows (the manifest's, else the journal's, else the default)."""
        if self.manifest is not None and self.manifest.prompt:
            return self.manifest.prompt
        return self.header.prompt if self.header is not None else RerankOptions.prompt


@dataclass
class Texts:
    """Query texts and raw passage texts, where the report could find them."""

    topics: dict[str, str] = field(default_factory=dict)
    passages: dict[str, str] = field(default_factory=dict)
    source: str | None = None
