"""The formats page (docs/formats.md) lists every field of the journal header, the window record, the rerank
manifest and the merge manifest, and no field they do not write: the field tables under their headings
are checked against what the typed records' `to_json` writes."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from rearank_cli.parse import ParseFlags
from rearank_cli.provenance import Provenance
from rearank_cli.rerank.manifests import MergeManifest, RerankManifest, ShardFiles
from rearank_cli.rerank.records import (
    JournalHeader,
    JournalSettings,
    WindowCounts,
    WindowRecord,
)
from tests.conftest import ROOT

FORMATS = ROOT / "docs" / "formats.md"

#: per heading: an example record's JSON, and the fields whose own fields the table lists too
RECORDS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "Journal header": (JournalHeader(JournalSettings(strategy="tdpart", strategy_params={
                                         "tdpart_pivot": 10, "tdpart_top_k": 10, "tdpart_budget": 20},
                                                     prompt_params={"words": 3}),
                                     Provenance.now("rerank.journal", {})).to_json(), {"settings"}),
    "Window record": (WindowRecord("q", 0, 0, 0, 1, ("d",), (0,), flags={**ParseFlags().as_dict(), "recovered": False},
                                   failed=True, error="BackendError: down").to_json(), {"flags"}),
    "Rerank manifest": (RerankManifest(Provenance.now("rerank.manifest", {}), "out.trec", strategy={
                            "strategy": "tdpart", "tdpart_pivot": 10, "tdpart_top_k": 10, "tdpart_budget": 20,
                            "windows_per_query": {}, "critical_path": {}, "per_query": {}}).to_json(),
                        {"summary", "summary.windows", "summary.tokens", "strategy"}),
    "Merge manifest": (MergeManifest(Provenance.now("merge.manifest", {}), windows=WindowCounts(),
                                     shards=(ShardFiles("s0.trec"),)).to_json(), {"shards[]"}),
}


def fields(data: Mapping[str, Any], expand: set[str], prefix: str = "") -> Iterable[str]:
    """Dotted names of `data`'s fields, with the fields of those named in `expand` (`name[]`: of the first
    item of a list)."""
    for key, value in data.items():
        name = prefix + key
        yield name
        if name in expand:
            yield from fields(value, expand, name + ".")
        elif name + "[]" in expand:
            yield from fields(value[0], expand, name + "[].")


def documented(title: str) -> set[str]:
    """The field names (first column) of the table under `### title` on the formats page."""
    found = re.search(rf"^### {re.escape(title)}\s*$(.*?)(?=^#{{1,3}} |\Z)", FORMATS.read_text(), re.M | re.S)
    if not found:
        pytest.fail(f"no '### {title}' section in {FORMATS.relative_to(ROOT)}")
    return set(re.findall(r"^\| `([^`]+)` \|", found.group(1), re.M))


@pytest.mark.parametrize("title", list(RECORDS))
def test_the_docs_list_every_field_of_each_record(title):
    data, expand = RECORDS[title]
    written = set(fields(data, expand))
    listed = documented(title)
    assert written - listed == set(), f"{title}: fields written but not documented"
    assert listed - written == set(), f"{title}: fields documented but not written"
