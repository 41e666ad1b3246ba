"""Every file layout the docs show (`<!-- layout:KIND -->` blocks) is read by rearank's reader of that kind,
and every input kind docs/formats.md lists has such an example."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rearank_cli.formats import load_texts, read_candidates, read_qrels, read_run, read_topics
from rearank_cli.formats.exclude import read_exclusions
from tests.docs_examples import DOCS, Block, all_blocks, tables


def _pairs(path: str) -> set[tuple[str, str]]:
    return {(qid, docid) for qid, docids in read_exclusions(path).items() for docid in docids}


def _candidates(path: str) -> tuple[Any, ...]:
    found = read_candidates(path)
    return found.run, found.topics, found.texts


#: the reader of each kind, returning what two layouts of one kind must agree on
READERS: dict[str, Callable[[str], Any]] = {
    "run": read_run, "qrels": read_qrels, "topics": read_topics, "corpus": load_texts,
    "candidates": _candidates, "exclusions": _pairs,
}
#: the kinds whose examples hold the same data in every layout
SAME_DATA = {"qrels", "topics", "candidates", "exclusions"}
#: rows of the Inputs table of docs/formats.md -> kind
TABLE_KINDS = {"TREC run": "run", "qrels": "qrels", "topics": "topics", "corpus": "corpus",
               "candidates": "candidates", "exclusions (`eval --exclude`)": "exclusions"}


def layout_blocks() -> list[Block]:
    return [block for block in all_blocks() if block.layout]


def read_block(block: Block, folder) -> Any:
    path = folder / f"{block.layout}-{block.line}.{'json' if block.lang == 'json' else 'txt'}"
    path.write_text(block.code)
    return READERS[block.layout](str(path))


@pytest.mark.parametrize("block", layout_blocks(), ids=lambda block: f"{block.layout}@{block.where}")
def test_every_documented_layout_is_read(block, tmp_path):
    assert block.layout in READERS, f"{block.where}: no reader for layout:{block.layout}"
    assert read_block(block, tmp_path), f"{block.where}: read as empty"


def test_layouts_of_one_kind_hold_the_same_data(tmp_path):
    by_kind: dict[str, list[Any]] = {}
    for block in layout_blocks():
        by_kind.setdefault(block.layout or "", []).append(read_block(block, tmp_path))
    for kind in SAME_DATA:
        assert len(by_kind[kind]) >= 2 and all(read == by_kind[kind][0] for read in by_kind[kind]), kind
    pyserini, beir = by_kind["corpus"]  # BEIR's title: `Title: … Content: …`, as the page says
    assert beir == {"4834547": "Title: Flea Content: " + pyserini["4834547"], "5611210": pyserini["5611210"]}


def test_every_input_kind_of_the_formats_page_has_an_example():
    rows = next(lines for _, lines in tables(DOCS / "formats.md") if lines[0].startswith("| file | layout"))
    names = [line.split("|")[1].strip() for line in rows[2:]]
    assert names == list(TABLE_KINDS)
    shown = {block.layout for block in layout_blocks() if block.path == DOCS / "formats.md"}
    assert shown == set(TABLE_KINDS.values())
