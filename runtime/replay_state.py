"""Replay protection that survives a restart: the ended stream ids of every keyed device, saved to a file.

With device keys a stream id is used once per key (docs/serve.md); the server remembers the ids that ended
(8 KiB per device) and refuses their packets as ``replay``. ``--state FILE`` keeps that memory across
restarts: loaded at start, written atomically (a temporary file renamed into place) once a second while
streams end and at shutdown. What it costs: 8 KiB per device on disk, and up to a second in which a crash
forgets the streams that ended.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from acom.errors import AcomError

FORMAT = "acom-replay-state-1"


def load_state(path: Path) -> dict[int, bytes]:
    """Ended stream ids per device from ``path`` ({} when the file does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        if raw.get("format") != FORMAT:
            raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT!r}")
        return {int(d): base64.b64decode(b) for d, b in raw["closed_stream_ids"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise AcomError(f"{path}: not a replay state file written by acom serve ({e})") from e


def save_state(path: Path, closed: dict[int, bytes]) -> None:
    """Write ``closed`` to ``path`` atomically (never a half-written file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps({"format": FORMAT, "closed_stream_ids": {
            str(d): base64.b64encode(b).decode("ascii") for d, b in sorted(closed.items())}}))
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
