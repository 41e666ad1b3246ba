"""The code blocks of the README and the documentation site (docs/*.md), read from the Markdown.

A fenced block may follow a marker comment that names it:
- `<!-- example:NAME -->` ... `<!-- /example:NAME -->`: a command or program that a test runs on a CPU;
- `<!-- quickstart -->` ... `<!-- /quickstart -->`: the README's quickstart (also run by a test);
- `<!-- output:NAME -->` ... `<!-- /output:NAME -->`: what example NAME prints (its lines are checked);
- `<!-- layout:KIND -->`: a small input file of KIND (run, qrels, topics, corpus, candidates, exclusions)
  that a test feeds to rearank's reader of that kind.
Any other shell or Python block must start with a `# needs: ...` line saying what it needs (a GPU, the
network, SLURM, data that is not in the checkout); those are syntax-checked only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
#: languages whose blocks are programs (run or syntax-checked); every other block is text
CODE_LANGS = {"bash", "sh", "shell", "console", "python"}
NEEDS = "# needs:"

_MARKER = re.compile(r"<!-- (example:[\w-]+|output:[\w-]+|layout:[\w-]+|quickstart) -->")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its text and the marker naming it (if any)."""

    path: Path
    line: int
    lang: str
    code: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def example(self) -> str | None:
        """The example's name (`quickstart` for the quickstart), or None."""
        if self.marker == "quickstart":
            return "quickstart"
        if self.marker and self.marker.startswith("example:"):
            return self.marker.split(":", 1)[1]
        return None

    @property
    def output_of(self) -> str | None:
        if self.marker and self.marker.startswith("output:"):
            return self.marker.split(":", 1)[1]
        return None

    @property
    def layout(self) -> str | None:
        """The input kind a `layout:KIND` block is a file of, or None."""
        if self.marker and self.marker.startswith("layout:"):
            return self.marker.split(":", 1)[1]
        return None

    @property
    def needs(self) -> str | None:
        """The `# needs: ...` line's text, or None."""
        first = self.code.lstrip("\n").split("\n", 1)[0]
        return first[len(NEEDS):].strip() if first.startswith(NEEDS) else None


def pages() -> list[Path]:
    """The README and every page of the site."""
    return [README, *sorted(DOCS.glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown file, each with the marker comment right above it."""
    found: list[Block] = []
    lines = path.read_text().splitlines()
    marker: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _MARKER.fullmatch(line.strip())
        if match:
            marker = match.group(1)
        elif line.startswith("```"):
            lang, start, body = line[3:].strip().split(" ")[0], i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            found.append(Block(path, start, lang, "\n".join(body) + "\n", marker))
            marker = None
        elif line.strip():
            marker = None
        i += 1
    return found


def all_blocks() -> list[Block]:
    return [block for path in pages() for block in blocks(path)]


def examples() -> dict[str, Block]:
    """Every named example (the quickstart under `quickstart`; the README's copy wins)."""
    named: dict[str, Block] = {}
    for block in all_blocks():
        if block.example and block.example not in named:
            named[block.example] = block
    return named


def outputs() -> dict[str, Block]:
    return {block.output_of: block for block in all_blocks() if block.output_of}


def tables(path: Path) -> list[tuple[int, list[str]]]:
    """Markdown tables outside code blocks: (first line number, their lines)."""
    found: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start, fence = 0, False
    for number, line in enumerate(path.read_text().splitlines() + [""], 1):
        if line.startswith("```"):
            fence = not fence
        if not fence and line.startswith("|"):
            if not current:
                start = number
            current.append(line)
        elif current:
            found.append((start, current))
            current = []
    return found
