"""TREC run files (`qid Q0 docid rank score tag`) and qrels (`qid 0 docid rel`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter

from rearank_cli.errors import InputError
from rearank_cli.formats.textio import atomic_output, iter_lines

Hit = tuple[str, float]
Run = dict[str, list[Hit]]
Qrels = dict[str, dict[str, int]]


def trec_order(hits: list[Hit]) -> list[Hit]:
    """Sort hits as trec_eval does: score descending, ties by docid descending (in place)."""
    hits.sort(key=itemgetter(0), reverse=True)
    hits.sort(key=itemgetter(1), reverse=True)
    return hits


def parse_score(text: str, path: str, number: int) -> float:
    """A finite float score, or an InputError naming the line."""
    try:
        score = float(text)
    except ValueError:
        raise InputError(f"score {text!r} is not a number", path, number) from None
    if not math.isfinite(score):
        raise InputError(f"score {text!r} is not finite", path, number)
    return score


def read_run(path: str, *, allow_empty: bool = False) -> Run:
    """Read a TREC run: `{qid: [(docid, score), ...]}` in trec_eval order, qids in file order.

    Errors (exit 2, naming the line): wrong column count, non-numeric or non-finite score,
    a docid repeated within a query, and an empty run (unless `allow_empty`).
    """
    run: Run = {}
    seen: dict[str, set[str]] = {}
    for number, line in iter_lines(path):
        parts = line.split()
        if len(parts) != 6:
            if not parts:
                continue
            raise InputError(
                f"expected 6 columns 'qid Q0 docid rank score tag', found {len(parts)}", path, number
            )
        qid, _, docid, _, score_text, _ = parts
        score = parse_score(score_text, path, number)
        docs = seen.get(qid)
        if docs is None:
            docs = seen[qid] = set()
            run[qid] = []
        if docid in docs:
            raise InputError(f"docid {docid!r} appears twice in query {qid!r}", path, number)
        docs.add(docid)
        run[qid].append((docid, score))
    if not run and not allow_empty:
        raise InputError("run is empty", path)
    for hits in run.values():
        trec_order(hits)
    return run


def format_score(score: float) -> str:
    """Shortest text that reads back as the same float."""
    return repr(float(score))


def write_run(path: str, run: Mapping[str, Sequence[Hit]], tag: str = "rearank") -> None:
    """Write a TREC run atomically (`-` = stdout), hits in the given order, ranks 1..n."""
    with atomic_output(path) as out:
        write_run_lines(out, run, tag)


def write_run_lines(out, run: Mapping[str, Sequence[Hit]], tag: str) -> None:
    """Write run lines to an open text stream."""
    for qid, hits in run.items():
        out.writelines(
            f"{qid} Q0 {docid} {rank} {format_score(score)} {tag}\n"
            for rank, (docid, score) in enumerate(hits, 1)
        )


def read_qrels(path: str) -> Qrels:
    """Read qrels `qid 0 docid rel` (graded ints); BEIR `query-id corpus-id score` TSV also accepted."""
    qrels: Qrels = {}
    for number, line in iter_lines(path):
        parts = line.split()
        if not parts:
            continue
        if number == 1 and parts[:2] == ["query-id", "corpus-id"]:
            continue
        if len(parts) == 4:
            qid, _, docid, rel_text = parts
        elif len(parts) == 3:
            qid, docid, rel_text = parts
        else:
            raise InputError(f"expected 4 columns 'qid 0 docid rel', found {len(parts)}", path, number)
        try:
            rel = int(rel_text)
        except ValueError:
            raise InputError(f"relevance {rel_text!r} is not an integer", path, number) from None
        judged = qrels.setdefault(qid, {})
        if docid in judged and judged[docid] != rel:
            raise InputError(f"docid {docid!r} judged twice with different labels in {qid!r}", path, number)
        judged[docid] = rel
    if not qrels:
        raise InputError("qrels file is empty", path)
    return qrels


def write_qrels(path: str, qrels: Mapping[str, Mapping[str, int]]) -> None:
    """Write qrels in TREC format atomically."""
    with atomic_output(path) as out:
        for qid, judged in qrels.items():
            out.writelines(f"{qid} 0 {docid} {rel}\n" for docid, rel in judged.items())


def run_from_lists(lists: Iterable[tuple[str, Sequence[str]]]) -> Run:
    """A run with strictly decreasing scores from ranked docid lists (score = n - rank + 1)."""
    run: Run = {}
    for qid, docids in lists:
        n = len(docids)
        run[qid] = [(docid, float(n - i)) for i, docid in enumerate(docids)]
    return run
