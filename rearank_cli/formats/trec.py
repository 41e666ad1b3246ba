"""TREC run files (`qid Q0 docid rank score tag`) and qrels (`qid 0 docid rel`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import IO, Any

from rearank_cli.errors import InputError, RunNotGrouped
from rearank_cli.formats.textio import atomic_output, open_binary

Hit = tuple[str, float]
Run = dict[str, list[Hit]]
Qrels = dict[str, dict[str, int]]


def trec_order(hits: list[Hit]) -> list[Hit]:
    """Sort hits as trec_eval does: score descending, ties by docid descending (in place)."""
    hits.sort(key=itemgetter(0), reverse=True)
    hits.sort(key=itemgetter(1), reverse=True)
    return hits


def first_stage_order(hits: list[Hit]) -> list[Hit]:
    """Sort hits as a reranker reads a first-stage ranking: score descending, ties in the given order
    (the file's order; spec section 2). In place, stable."""
    hits.sort(key=itemgetter(1), reverse=True)
    return hits


def parse_score(text: str, path: str, number: int | None) -> float:
    """A finite float score, or an InputError naming the line."""
    try:
        score = float(text)
    except ValueError:
        raise InputError(f"score {text!r} is not a number", path, number) from None
    if not math.isfinite(score):
        raise InputError(f"score {text!r} is not finite", path, number)
    return score


RunScores = dict[str, dict[str, float]]

_CHUNK_BYTES = 1 << 22


def _decode(block: bytes) -> str:
    """UTF-8 text with universal newlines, as `iter_lines` reads it."""
    text = block.decode("utf-8")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _text_chunks(path: str, check_prefix: Callable[[int, str], object] | None = None
                 ) -> Iterator[tuple[int, str]]:
    """Yield `(first_line_number, text)` for blocks of whole lines (a few MiB each) of a text input.

    Before a UTF-8 error, `check_prefix(number, text)` (default: the run
    parser) parses the lines before the bad bytes so that an earlier line error is reported first.
    """
    check = check_prefix or (lambda number, text: _RunParser(path).feed(number, text))
    number = 1
    rest = b""
    with open_binary(path) as handle:
        while True:
            try:
                block = handle.read(_CHUNK_BYTES)
            except (OSError, EOFError) as exc:
                raise InputError(f"cannot read ({exc})", path) from None
            if not block:
                break
            block = rest + block if rest else block
            cut = block.rfind(b"\n") + 1
            rest = block[cut:]
            if cut:
                text = _decode_or_fail(block[:cut], number, path, check)
                yield number, text
                number += text.count("\n")
        if rest:
            yield number, _decode_or_fail(rest, number, path, check)


def _decode_or_fail(block: bytes, number: int, path: str, check: Callable[[int, str], object]) -> str:
    """Decode a block; on bad UTF-8 raise InputError (after line errors before it, via the slow parser)."""
    try:
        return _decode(block)
    except UnicodeDecodeError as exc:
        good = block[: block.rfind(b"\n", 0, exc.start) + 1]
        if good:
            check(number, _decode(good))
        raise InputError(f"not valid UTF-8 text ({exc.reason})", path) from None


class _RunParser:
    """Parses blocks of run lines into `{qid: {docid: score}}`.

    The fast path parses a block with no per-line checks (they are done once per block) and falls back
    to the line-by-line parser, which names the line at fault, whenever anything in the block is wrong.
    """

    def __init__(self, path: str, flushed: set[str] | None = None) -> None:
        self.path = path
        self.run: RunScores = {}
        self.flushed = flushed
        self.last_qid: str | None = None
        self.tag: str | None = None  # the tag (6th field) of the last line: trec_eval's runid

    def feed(self, number: int, text: str) -> None:
        """Parse the lines of `text`, the first being line `number` of the file."""
        if not self._fast(text):
            self._slow(number, text)

    def _fast(self, text: str) -> bool:
        lines = text.split("\n")
        if lines and not lines[-1]:
            lines.pop()
        if not lines:
            return True
        try:
            local, current, tag = _parse_rows(map(str.split, lines))
        except ValueError:  # more than 6 fields (ignored, as trec_eval does), or a line the slow path names
            try:
                local, current, tag = _parse_rows(parts[:6] for parts in map(str.split, lines))
            except ValueError:
                return False
        if sum(map(len, local.values())) != len(lines):  # a docid repeated within the block
            return False
        if not all(math.isfinite(sum(docs.values())) for docs in local.values()) or not self._fits(local):
            return False
        for qid, docs in local.items():
            have = self.run.get(qid)
            if have is None:
                self.run[qid] = docs
            else:
                have.update(docs)
        self.last_qid = current
        self.tag = tag
        return True

    def _fits(self, local: RunScores) -> bool:
        """Whether a parsed block merges into the run without repeating a docid."""
        for qid, docs in local.items():
            have = self.run.get(qid)
            if have is None:
                self._check_grouped(qid)
            elif not have.keys().isdisjoint(docs):
                return False
        return True

    def _check_grouped(self, qid: str) -> None:
        if self.flushed is not None and qid in self.flushed:
            raise RunNotGrouped(qid)

    def _slow(self, number: int, text: str) -> None:
        path, run = self.path, self.run
        for number, line in enumerate(text.split("\n"), number):  # noqa: B020
            parts = line.split()
            if len(parts) < 6:
                if not parts:
                    continue
                raise InputError(
                    f"expected 6 columns 'qid Q0 docid rank score tag' (more are ignored), found {len(parts)}",
                    path, number,
                )
            qid, _, docid, _, score_text, tag = parts[:6]
            score = parse_score(score_text, path, number)
            docs = run.get(qid)
            if docs is None:
                self._check_grouped(qid)
                docs = run[qid] = {}
            if docid in docs:
                raise InputError(f"docid {docid!r} appears twice in query {qid!r}", path, number)
            docs[docid] = score
            self.last_qid = qid
            self.tag = tag


def _parse_rows(rows: Iterable[list[str]]) -> tuple[RunScores, str | None, str | None]:
    """Rows of exactly 6 fields -> (`{qid: {docid: score}}`, last qid, last tag); ValueError otherwise."""
    local: RunScores = {}
    current = tag = None
    docs: dict[str, float] = {}
    for qid, _, docid, _, score, tag in rows:  # noqa: B007 - the last line's tag is the runid
        if qid != current:
            current = qid
            docs = local.setdefault(qid, {})
        docs[docid] = float(score)
    return local, current, tag


def read_run_scores(path: str, *, allow_empty: bool = False, info: dict[str, Any] | None = None) -> RunScores:
    """Read a TREC run as `{qid: {docid: score}}` (qids and docids in file order), fast.

    The same checks and errors as `read_run`; this is the form pytrec_eval takes. `info`, if given,
    gets `tag`: the tag of the last line (what trec_eval prints as `runid`).
    """
    parser = _RunParser(path)
    for number, text in _text_chunks(path):
        parser.feed(number, text)
    if info is not None:
        info["tag"] = parser.tag
    if not parser.run and not allow_empty:
        raise InputError("run is empty", path)
    return parser.run


def iter_run_queries(path: str, info: dict[str, Any] | None = None) -> Iterator[tuple[str, dict[str, float]]]:
    """Stream a run whose lines are grouped by query: yield `(qid, {docid: score})` per finished query.

    Memory stays at a few MiB of lines however big the run. Raises `RunNotGrouped` when a query
    comes back after another query's lines (queries yielded so far are then incomplete: re-read the
    file with `read_run_scores`), and the errors of `read_run` otherwise.
    `info`, if given, gets `tag` (the last line's tag so far) as `read_run_scores` gives it.
    """
    flushed: set[str] = set()
    parser = _RunParser(path, flushed=flushed)
    for number, text in _text_chunks(path):
        parser.feed(number, text)
        if info is not None:
            info["tag"] = parser.tag
        done = [qid for qid in parser.run if qid != parser.last_qid]
        for qid in done:
            flushed.add(qid)
            yield qid, parser.run.pop(qid)
    if not parser.run and not flushed:
        raise InputError("run is empty", path)
    yield from parser.run.items()


def read_run(path: str, *, allow_empty: bool = False) -> Run:
    """Read a TREC run: `{qid: [(docid, score), ...]}` in trec_eval order, qids in file order.

    Errors (exit 2, naming the line): fewer than 6 columns (columns 7 and beyond are ignored, as
    trec_eval ignores them), non-numeric or non-finite score, a docid repeated within a query, and an
    empty run (unless `allow_empty`).
    """
    return {
        qid: trec_order(list(docs.items()))
        for qid, docs in read_run_scores(path, allow_empty=allow_empty).items()
    }


def format_score(score: float) -> str:
    """Shortest text that reads back as the same float."""
    return repr(float(score))


def write_run(path: str, run: Mapping[str, Sequence[Hit]], tag: str = "rearank") -> None:
    """Write a TREC run atomically (`-` = stdout), hits in the given order, ranks 1..n."""
    with atomic_output(path) as out:
        write_run_lines(out, run, tag)


def write_run_lines(out: IO[str], run: Mapping[str, Sequence[Hit]], tag: str,
                    score_text: Callable[[float], str] = format_score) -> None:
    """Write run lines to an open text stream (`score_text` writes each score; shortest exact repr by default)."""
    for qid, hits in run.items():
        out.writelines(
            f"{qid} Q0 {docid} {rank} {score_text(score)} {tag}\n"
            for rank, (docid, score) in enumerate(hits, 1)
        )


def read_qrels(path: str) -> Qrels:
    """Read qrels: `qid 0 docid rel` lines (graded ints), or a BEIR TSV `query-id corpus-id score`.

    One layout per file, set by its first line (a BEIR header line `query-id corpus-id score` is
    optional): a 3-column line among 4-column lines (a missing field) is an error, never BEIR.
    As in trec_eval, fields 5+ are an error and there are no comment lines. Other errors (exit 2,
    naming the line): a non-integer label, a docid judged twice with different labels in one query,
    an empty file. Blank lines are skipped. Blocks of plain 4-column lines take a fast path.
    """
    qrels: Qrels = {}
    layout: list[int] = []  # [4] (TREC) or [3] (BEIR) once the first line is read

    def check(number: int, text: str) -> None:
        _qrels_lines(text, number, path, {}, list(layout))

    for number, text in _text_chunks(path, check_prefix=check):
        if layout != [3] and _qrels_fast(text, qrels):
            layout[:] = [4]
        else:
            _qrels_lines(text, number, path, qrels, layout)
    if not qrels:
        raise InputError("qrels file is empty", path)
    return qrels


def _qrels_fast(text: str, qrels: Qrels) -> bool:
    """Add a block of 4-column qrels lines at once; False (nothing added) if anything needs a closer look."""
    lines = text.split("\n")
    if lines and not lines[-1]:
        lines.pop()
    local: Qrels = {}
    current = None
    judged: dict[str, int] = {}
    try:
        for qid, _, docid, rel in map(str.split, lines):
            if qid != current:
                current = qid
                judged = local.setdefault(qid, {})
            judged[docid] = int(rel)
    except ValueError:  # blank, 3-column (BEIR) or malformed lines, a bad label: the line parser decides
        return False
    if sum(map(len, local.values())) != len(lines):  # a docid judged twice within the block
        return False
    if any(qid in qrels and not qrels[qid].keys().isdisjoint(judged) for qid, judged in local.items()):
        return False
    for qid, judged in local.items():
        qrels.setdefault(qid, {}).update(judged)
    return True


def _qrels_lines(text: str, number: int, path: str, qrels: Qrels, layout: list[int]) -> None:
    """Add qrels lines one by one, the first being line `number`, naming the line at fault.

    `layout` is [] until the first line decides it: [4] for TREC qrels, [3] for a BEIR TSV.
    """
    for number, line in enumerate(text.split("\n"), number):  # noqa: B020
        parts = line.split()
        if not parts:
            continue
        if number == 1 and parts[:2] == ["query-id", "corpus-id"]:
            layout[:] = [3]
            continue
        _check_qrels_layout(parts, layout, path, number)
        qid, docid, rel_text = (parts[0], parts[2], parts[3]) if len(parts) == 4 else parts
        try:
            rel = int(rel_text)
        except ValueError:
            raise InputError(f"relevance {rel_text!r} is not an integer{_comment_hint(parts)}", path, number) from None
        judged = qrels.setdefault(qid, {})
        if docid in judged and judged[docid] != rel:
            raise InputError(f"docid {docid!r} judged twice with different labels in {qid!r}", path, number)
        judged[docid] = rel


def _comment_hint(parts: list[str]) -> str:
    return " (trec_eval reads no comment lines)" if parts[0].startswith("#") else ""


def _check_qrels_layout(parts: list[str], layout: list[int], path: str, number: int) -> None:
    """Refuse a line whose column count is not the file's layout (set here by the first line)."""
    if len(parts) not in (3, 4):
        raise InputError(f"expected 4 columns 'qid 0 docid rel' (or 3 in a BEIR TSV), found {len(parts)}"
                         f"{_comment_hint(parts)}", path, number)
    if not layout:
        layout.append(len(parts))
    elif len(parts) != layout[0]:
        if layout[0] == 4:
            raise InputError("3 columns in a 4-column TREC qrels file: expected 'qid 0 docid rel' "
                             "(a missing field?)", path, number)
        raise InputError("4 columns in a 3-column BEIR qrels file: expected 'query-id corpus-id score'",
                         path, number)


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


def read_first_stage(path: str) -> Run:
    """Read a TREC run as a reranker's input: `{qid: [(docid, score), ...]}`, score descending with
    equal scores in the order the file lists them (not trec_eval's docid rule), qids in file order.

    The same checks and errors as `read_run`.
    """
    return {qid: first_stage_order(list(docs.items())) for qid, docs in read_run_scores(path).items()}
