"""A short run of the coverage-guided fuzzer (bench/fuzz_cov.py; the long one is a benchmark): its corpus and
20,000 new inputs through the decoder, the payload decoders, the reassembler, the serial deframer and the
encoder round trips, with no exception but WireError."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.xdist_group("fuzz")
def test_a_short_fuzzing_run_finds_nothing(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "fuzz_cov.py"), "--runs", "20000", "--seed", "7"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT,
                       env={**os.environ, "TMPDIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Done 20000 runs" in r.stderr and "stat::number_of_executed_units: 20000" in r.stderr
    assert not list(ROOT.glob("crash-*"))
    assert not list(tmp_path.iterdir())  # the inputs the run found went to a temporary folder, removed
