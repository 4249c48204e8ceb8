"""What the benchmarks share: one entry of a JSON report updated in place, the other entries kept."""

from __future__ import annotations

import json
from pathlib import Path


def merge_entry(path: Path, key: str, entry: dict) -> None:
    """Set ``key`` of the JSON object in ``path`` (created with its folder when missing) to ``entry``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    report = json.loads(path.read_text()) if path.exists() else {}
    report[key] = entry
    path.write_text(json.dumps(report, indent=1) + "\n")
