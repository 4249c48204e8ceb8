"""The device's C wire code (firmware_host/c/) reproduces the test vectors byte for byte: built with this
machine's gcc, for the Raspberry Pis (static aarch64, run by qemu-aarch64) and as bare-metal Cortex-M
firmware (run by qemu-system-arm with semihosting) from the board profiles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acom.boards import known_boards
from acom.errors import AcomError
from acom.firmware_host import cbuild, wire_c


@pytest.mark.parametrize("board", ["host", *known_boards()])
def test_c_wire_code_reproduces_the_vectors(board: str) -> None:
    vectors = json.loads(wire_c.VECTORS.read_text())
    r = wire_c.check(board)
    assert r["differences"] == []
    # every stream's packets and frames, four checks per extra input, the refusals and "done"
    packets = sum(len(c["packets"]) for c in vectors["cases"]) + sum(len(c.packets) for c in wire_c.random_cases())
    assert r["lines"] == 2 * packets + 4 * len(wire_c.extra_inputs()) + 2


def test_a_changed_vector_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One byte of one expected packet changed: the check names that line, and the command exits 1."""
    vectors = json.loads(wire_c.VECTORS.read_text())
    pkt = vectors["cases"][1]["packets"][1]
    vectors["cases"][1]["packets"][1] = pkt[:-2] + f"{int(pkt[-2:], 16) ^ 1:02x}"
    path = tmp_path / "wire_v2.json"
    path.write_text(json.dumps(vectors))
    r = wire_c.check("host", path)
    assert len(r["differences"]) == 1 and "packet 1 1 " in r["differences"][0]
    assert wire_c.main(["--board", "host", "--vectors", str(path)]) == 1
    assert "1 differences" in capsys.readouterr().out


def test_bad_vectors_file_and_missing_tool_are_clear_errors(tmp_path: Path, monkeypatch) -> None:
    bad = tmp_path / "v.json"
    bad.write_text(json.dumps({"codes": [[1]]}))
    with pytest.raises(AcomError, match="v.json: no field 'cases'"):
        wire_c.check("host", bad)
    old = json.loads(wire_c.VECTORS.read_text())  # cases without the stream they were sent as
    del old["cases"][0]["device_id"]
    bad.write_text(json.dumps(old))
    with pytest.raises(AcomError, match="v.json: no field 'device_id'"):
        wire_c.check("host", bad)
    assert wire_c.main(["--board", "host", "--vectors", str(tmp_path / "none.json")]) == 2
    monkeypatch.setattr(cbuild.shutil, "which", lambda name: None)
    with pytest.raises(AcomError, match="qemu-aarch64 not found|aarch64-linux-gnu-gcc not found"):
        wire_c.check("rpi4")
