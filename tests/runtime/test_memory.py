"""The server's memory under the worst packets its limits allow stays under the ceiling docs/serve.md states:
at most 240 MB plus 1 MB per open stream over what it needs idle (a tail step runs 2,048 frames at most, the
default budget). Runs bench/serve_memory.py small (a real `acom serve` on 127.0.0.1, its peak resident memory)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEP_MB, STREAM_MB = 240.0, 1.0


@pytest.mark.xdist_group("memory")
def test_the_worst_packets_stay_under_the_memory_ceiling(tmp_path: Path) -> None:
    streams, packets = 32, 3
    out = tmp_path / "memory.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "serve_memory.py"), "--streams", str(streams),
                        "--packets", str(packets), "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    row = json.loads(out.read_text())["asr"][f"{streams}x{packets}"]
    # each packet claimed 30 s lost and 10 s carried (1,000 frames); the tail ran the gap's 225 frames of it
    assert row["frames_claimed_per_packet"] == 1000 and row["frames_run_per_packet"] == 475
    assert row["finals"] == row["finals_complete"] == streams  # every stream answered in full
    assert row["packet_outcomes"] == {"accepted": streams * packets + 2}  # and the warm-up stream's 2
    assert row["growth_mb"] <= STEP_MB + STREAM_MB * streams, row
