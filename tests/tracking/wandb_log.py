"""Read a W&B offline run file (``run-<id>.wandb``) with W&B's own protobuf records.

The file is W&B's record log: a 7-byte header (``:W&B``, magic, version), then LevelDB-style chunks
(crc32c: 4 bytes, length: 2 bytes little-endian, type: 1 byte; full / first / middle / last) in
32 KiB blocks, each record one serialised ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str | Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", data[:7]
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # block trailer padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def summary(path: str | Path) -> dict:
    """The run summary as the file holds it (later updates win)."""
    out = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                out[item.key] = json.loads(item.value_json)
    return out


def run_info(path: str | Path) -> dict:
    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            return {"id": record.run.run_id, "group": record.run.run_group, "tags": list(record.run.tags),
                    "project": record.run.project, "name": record.run.display_name}
    return {}


def history(path: str | Path) -> list[dict]:
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
    return rows
