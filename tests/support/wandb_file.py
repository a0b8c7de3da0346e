"""Read the records of a ``.wandb`` file (an offline or synced run's local log).

wandb 0.31 ships no Python reader for these files. Their layout is a LevelDB-style log: a
7-byte header (``:W&B``, a 2-byte magic, a version byte), then 32 KiB blocks of chunks, each
chunk a 7-byte header (CRC-32 of type + data, little-endian length, type: 1 full, 2 first,
3 middle, 4 last) and its data; a block's tail shorter than a chunk header is padding. A
record is a ``wandb.proto.wandb_internal_pb2.Record`` message, parsed with wandb's own
protobuf classes.

Test support (not in the package): the tests read back what the wandb logger wrote offline.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK_SIZE = 32 * 1024
HEADER = 7
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class WandbFileError(ValueError):
    """Not a ``.wandb`` file, or a damaged one."""


def raw_records(path: Path) -> Iterator[bytes]:
    """The serialized records of a ``.wandb`` file, in order."""
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise WandbFileError(f"{path}: not a .wandb file")
    position, pending = HEADER, b""
    while position + CHUNK_HEADER <= len(data):
        left = BLOCK_SIZE - position % BLOCK_SIZE
        if left < CHUNK_HEADER:
            position += left
            continue
        checksum, length, kind = struct.unpack("<IHB", data[position : position + CHUNK_HEADER])
        if kind == 0 and length == 0:  # zero padding at the end of a block
            position += left
            continue
        chunk = data[position + CHUNK_HEADER : position + CHUNK_HEADER + length]
        if len(chunk) < length:
            break  # a run still being written: its last chunk is incomplete
        if zlib.crc32(bytes([kind]) + chunk) != checksum:
            raise WandbFileError(f"{path}: bad checksum at byte {position}")
        position += CHUNK_HEADER + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
        else:
            raise WandbFileError(f"{path}: unknown chunk type {kind} at byte {position}")


@dataclass
class WandbRunLog:
    """What a ``.wandb`` file says about its run."""

    run_id: str = ""
    project: str = ""
    group: str = ""
    name: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    """One dict per ``run.log`` call: the metrics, with ``_step``"""
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def read_wandb_file(path: Path) -> WandbRunLog:
    """Parse the run, config, history, summary and exit records of a ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2

    log = WandbRunLog()
    for raw in raw_records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            log.run_id, log.project, log.group = run.run_id, run.project, run.run_group
            log.name, log.job_type, log.tags = run.display_name, run.job_type, list(run.tags)
            for item in run.config.update:
                log.config[_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                log.config[_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            log.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            for item in record.summary.update:
                log.summary[_key(item)] = json.loads(item.value_json)
        elif kind == "exit":
            log.exit_code = record.exit.exit_code
    return log


def offline_runs(folder: Path) -> list[Path]:
    """The ``.wandb`` files of the runs under ``folder`` (e.g. a job folder), oldest first."""

    def started(path: Path) -> tuple[str, int]:
        match = re.search(r"\d{8}_\d{6}", path.parent.name)
        return (match.group(0) if match else "", path.stat().st_mtime_ns)

    return sorted(Path(folder).glob("**/wandb/*run-*/run-*.wandb"), key=started)
