"""The device's C wire code (firmware_host/c/) reproduces the test vectors byte for byte: built with this
machine's gcc, for the Raspberry Pis (static aarch64, run by qemu-aarch64) and as bare-metal Cortex-M
firmware (run by qemu-system-arm with semihosting) from the board profiles; and on any input (hypothesis) it
encodes what Python encodes and refuses what Python refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acom.boards import known_boards
from acom.errors import AcomError
from acom.firmware_host import cbuild, wire_c
from acom.runtime.wire import Packet, encode_packet, frame_serial, pack_codes


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


packets = st.builds(
    Packet, device_id=st.integers(0, 2**32 - 1), stream_id=st.integers(0, 2**16 - 1), seq=st.integers(0, 2**32 - 1),
    first_frame=st.integers(0, 2**32 - 1), codebook_id=st.integers(0, 2**64 - 1), n_q=st.integers(0, 255),
    n_frames=st.integers(0, 4096), payload=st.binary(max_size=1400), entropy_coded=st.booleans(),
    end_of_stream=st.booleans())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(p=packets, key=st.none() | st.binary(max_size=100), compact=st.booleans())
def test_c_encodes_any_packet_as_python_does(encoder, p, key, compact):
    """Any fields, payload and key: the same bytes, or the same refusal (n_q, n_frames, over 1400 bytes)."""
    got = encoder(wire_c.packet_record(p, key, compact))
    assert got == [wire_c.expected_encoding("P", encode_packet, p, key, compact)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), sizes=st.lists(st.integers(1, 65536), min_size=1, max_size=6), frames=st.integers(0, 60))
def test_c_packs_codes_as_python_does(encoder, data, sizes, frames):
    """Any codebook sizes (1 to 16 bits a code) and codes, a code >= K now and then: same bytes or refusal."""
    rows = [data.draw(st.lists(st.integers(0, k - 1 + (k < 65536 and data.draw(st.booleans()) and 1)),
                               min_size=frames, max_size=frames)) for k in sizes]
    codes = np.array(rows, dtype=np.int64).reshape(len(sizes), frames)
    got = encoder(wire_c.pack_record(codes, sizes))
    assert got == [wire_c.expected_encoding("C", pack_codes, codes, sizes)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.binary(max_size=600) | st.sampled_from([b"\x00", bytes(range(1, 255)), b"\x01" * 508]),
                       max_size=4))
def test_c_frames_any_bytes_as_the_cobs_package_does(encoder, chunks):
    data = b"".join(chunks)[:1500]
    assert encoder(wire_c.frame_record(data)) == [f"F {len(frame_serial(data))} {frame_serial(data).hex()}"]


def test_aarch64_encoder_agrees_on_a_random_batch():
    """The same three checks on the rpi4 build under qemu-aarch64: 300 seeded records in one run."""
    rng = np.random.default_rng(3)
    records, want = b"", []
    for i in range(100):
        p = Packet(device_id=int(rng.integers(2**32)), stream_id=int(rng.integers(2**16)), seq=int(rng.integers(2**32)),
                   first_frame=int(rng.integers(2**32)), codebook_id=int(rng.integers(2**63)) * 2 + i % 2,
                   n_q=int(rng.integers(0, 20)), n_frames=int(rng.integers(0, 4097)),
                   payload=rng.bytes(int(rng.integers(0, 1400))), end_of_stream=bool(i % 3 == 0))
        key, compact = (rng.bytes(int(rng.integers(0, 80))) if i % 2 else None), bool(i % 4 < 2)
        records += wire_c.packet_record(p, key, compact)
        want.append(wire_c.expected_encoding("P", encode_packet, p, key, compact))
        sizes = [int(k) for k in rng.integers(1, 65537, int(rng.integers(1, 5)))]
        codes = np.stack([rng.integers(0, k, 30) for k in sizes])
        records += wire_c.pack_record(codes, sizes)
        want.append(wire_c.expected_encoding("C", pack_codes, codes, sizes))
        data = rng.integers(0, 3, int(rng.integers(0, 1400)), dtype=np.uint8).tobytes()
        records += wire_c.frame_record(data)
        want.append(f"F {len(frame_serial(data))} {frame_serial(data).hex()}")
    assert wire_c.run_encoder("rpi4", records) == want
