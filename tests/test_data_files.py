"""The data the tests and benchmarks read lives in the checkout, each file as its SOURCE.md describes it."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import pytest

from tests.conftest import DATA, ROOT, SAMPLES

#: a `| file | bytes | `sha256` | ...` row of a SOURCE.md table
ROW = re.compile(r"^\| ([\w./-]+) \| (\d+) \| `([0-9a-f]{64})` \|(?: `([0-9a-f]{64})` \|| \|)?$")
#: a path in code that leaves the checkout: the folder above it, the workplace layout, a machine path
OUTSIDE = re.compile(r"ROOT\.parent\b|\.\./shared\b|[\"']shared[\"']\s*/|/work/|/home/\w")
#: `Path(__file__).parents[N]`: above the checkout when N is at least the file's depth in it
PARENTS = re.compile(r"parents\[(\d+)\]")


def leaves(line: str, depth: int) -> bool:
    """True when `line`, in a file `depth` path parts below the checkout, names a path outside it."""
    if OUTSIDE.search(line) and "re.compile(" not in line:  # a pattern that bans such paths
        return True
    return any(int(n) >= depth for n in PARENTS.findall(line))


def table(folder: Path) -> dict[str, tuple[int, str, str | None]]:
    """{file: (bytes, sha256, sha256 of the gunzipped original or None)} from folder/SOURCE.md."""
    rows = {}
    for line in (folder / "SOURCE.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match[1]] = (int(match[2]), match[3], match[4])
    return rows


@pytest.mark.parametrize("folder", [SAMPLES, DATA], ids=["sample_runs", "tests-data"])
def test_every_data_file_is_listed_with_its_checksum(folder):
    rows = table(folder)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != "SOURCE.md")
    assert files == sorted(rows), "SOURCE.md's table and the folder's files differ"
    for name, (size, sha, original) in rows.items():
        body = (folder / name).read_bytes()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (size, sha), name
        if original:
            assert hashlib.sha256(gzip.decompress(body)).hexdigest() == original, name


def test_tests_and_benches_read_nothing_outside_the_checkout():
    """A clone anywhere runs every test and benchmark: no path above the checkout or on this machine."""
    found = []
    for folder in ("tests", "bench", "scripts", "examples"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in {".py", ".sh", ".md"} or path == Path(__file__):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if leaves(line, len(path.relative_to(ROOT).parts)):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_pattern_catches_the_layouts_it_is_for():
    hits = ['DATA = ROOT.parent / "shared" / "data"', "see ../shared/data", 'Path("/work/shared")',
            'base / "shared" / "data"', "Path(__file__).parents[2]"]
    assert all(leaves(line, 2) for line in hits)  # a file in tests/
    fine = ['ROOT / "tests" / "data"', "shared by the module's tests", "Path(__file__).parents[1]", "../../sample_runs"]
    assert not any(leaves(line, 2) for line in fine)
    assert not leaves("ROOT = Path(__file__).resolve().parents[3]", 4)  # tests/fixtures/prompts/common.py
