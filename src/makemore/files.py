"""Atomic writes: a reader sees the old file or the new one, never half of one; and JSON that is always valid
(a loss that is not a number is written as null, never as NaN)."""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from pathlib import Path


def write_atomic(path, data: bytes | str):
    """data written to path through a temporary file beside it, then renamed over it; the file gets the mode a
    new file gets (the umask's), not mkstemp's 0600."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@functools.cache
def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def plain(value):
    """value with every float that is not finite made None: what JSON can hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def to_json(value, indent: int | None = None) -> str:
    return json.dumps(plain(value), indent=indent, allow_nan=False)


def write_json(path, value):
    write_atomic(path, to_json(value, indent=2) + "\n")


def write_jsonl(path, records: list[dict]):
    write_atomic(path, "".join(to_json(r) + "\n" for r in records))


def truncate_jsonl(path: Path, step: int) -> list[dict]:
    """A resumed run's records: those up to its checkpoint's step; the ones after it are written again."""
    path = Path(path)
    lines = path.read_text().splitlines() if path.exists() else []
    records = [r for r in map(json.loads, lines) if r["step"] <= step]
    write_jsonl(path, records)
    return records
