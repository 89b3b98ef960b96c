"""Atomic writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path, data: bytes | str):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def truncate_jsonl(path: Path, step: int) -> list[dict]:
    """A resumed run's records: those up to its checkpoint's step; the ones after it are written again."""
    import json

    path = Path(path)
    lines = path.read_text().splitlines() if path.exists() else []
    records = [r for r in map(json.loads, lines) if r["step"] <= step]
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
    return records
