"""The VeRL layout of `rearank augment`'s samples (`--format parquet`), one row per sample:

    data_source   "rearank"
    prompt        the chat messages (list of {role, content})
    ability       "rerank"
    reward_model  {style: "rule", ground_truth: {labels, r_init, r_best, idcg}}
    extra_info    the sample row (`sampling`) without `prompt`, plus split ("train") and index (0-based row number)

pyarrow is imported when a file is written, never at import.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import IO, Any

from rearank_cli.errors import require

DATA_SOURCE = "rearank"


ABILITY = "rerank"


def verl_record(row: dict[str, Any], index: int) -> dict[str, Any]:
    """One VeRL parquet record from a JSONL row (layout in the module docstring)."""
    extra = {key: value for key, value in row.items() if key != "prompt"}
    extra.update(split="train", index=index)
    truth = {key: row[key] for key in ("labels", "r_init", "r_best", "idcg")}
    return {
        "data_source": DATA_SOURCE,
        "prompt": row["prompt"],
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": truth},
        "extra_info": extra,
    }


def verl_schema(pa: Any) -> Any:
    """The explicit arrow schema of the VeRL parquet (stable types even for empty outputs)."""
    ints, floats, strings = pa.list_(pa.int64()), pa.list_(pa.float64()), pa.list_(pa.string())
    truth = pa.struct([("labels", ints), ("r_init", pa.float64()), ("r_best", pa.float64()),
                       ("idcg", pa.float64())])
    extra = pa.struct([
        ("qid", pa.string()), ("query", pa.string()), ("docids", strings), ("passages", strings),
        ("first_stage_ranks", ints), ("first_stage_scores", floats), ("labels", ints),
        ("r_init", pa.float64()), ("r_best", pa.float64()), ("idcg", pa.float64()), ("sample", pa.int64()),
        ("window", pa.int64()), ("prompt_name", pa.string()), ("prompt_hash", pa.string()),
        ("split", pa.string()), ("index", pa.int64()),
    ])
    return pa.schema([
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", truth)])),
        ("extra_info", extra),
    ])


def write_parquet(rows: Iterable[dict[str, Any]], out: IO[bytes], batch_rows: int = 1024) -> None:
    """The VeRL layout, written in row groups of `batch_rows` (pyarrow is imported here, lazily)."""
    pa = require("pyarrow", "train")
    pq = require("pyarrow.parquet", "train")
    schema = verl_schema(pa)
    seekable = out.seekable() if hasattr(out, "seekable") else False
    buffer = None if seekable else io.BytesIO()
    sink: IO[bytes] = out if buffer is None else buffer
    written = 0
    with pq.ParquetWriter(sink, schema) as writer:
        batch: list[dict[str, Any]] = []
        for index, row in enumerate(rows):
            batch.append(verl_record(row, index))
            if len(batch) == batch_rows:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                written += len(batch)
                batch = []
        if batch or not written:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    if buffer is not None:
        out.write(buffer.getvalue())
