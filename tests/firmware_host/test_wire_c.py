"""The device's C wire code (firmware_host/c/) reproduces the test vectors (wire_v3.json) byte for byte: built with
this machine's gcc, for the Raspberry Pis (static aarch64, run by qemu-aarch64) and as bare-metal Cortex-M
firmware (run by qemu-system-arm with semihosting) from the board profiles; and on any input (hypothesis), full
packets and short ones against any context, it encodes what Python encodes and refuses what Python refuses."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acom.boards import known_boards
from acom.errors import AcomError
from acom.firmware_host import device_c, wire_c
from acom.runtime.sender import stream_packets
from acom.runtime.wire import Contexts, Packet, StreamContext, codebook_id, decode_packet, frame_serial, pack_codes


@pytest.mark.parametrize("board", ["host", *known_boards()])
def test_c_wire_code_reproduces_the_vectors(board: str) -> None:
    vectors = json.loads(wire_c.VECTORS.read_text())
    r = wire_c.check(board)
    assert r["differences"] == []
    # every stream's packets and frames, the packets encoded one by one, five checks per extra input, the
    # refusals and "done"
    packets = sum(len(c["packets"]) for c in vectors["cases"]) + sum(len(c.packets) for c in wire_c.random_cases())
    assert r["lines"] == 2 * packets + len(wire_c.encode_cases()) + 5 * len(wire_c.extra_inputs()) + 2


def test_the_checks_cover_what_v3_sends() -> None:
    """The streams and single packets the C is checked on hold every kind of packet: full ones with each tag
    length, short ones with and without their own n_q and n_frames, with end of stream, whose seq's low byte
    wrapped; and refusals of both reasons."""
    vectors = json.loads(wire_c.VECTORS.read_text())
    sent = [bytes.fromhex(p) for c in vectors["cases"] for p in c["packets"]]
    sent += [bytes.fromhex(p) for c in wire_c.random_cases() for p in c.packets]
    encoded = [e.expected() for e in wire_c.encode_cases()]
    sent += [data for n, data in encoded if n > 0]
    full, short = [d for d in sent if not d[0] & 0x80], [d for d in sent if d[0] & 0x80]
    assert {d[3] >> 2 & 3 for d in full} == {0, 1, 2, 3}
    assert {d[0] & 0x70 for d in short} == set(range(0, 0x80, 0x10))  # end, n_q, n_frames: every combination
    assert any(d[1] == 0 for d in short) and {n for n, _ in encoded if n < 0} == {-1, -2}


def test_a_changed_vector_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One byte of one expected packet changed: the check names that line, and the command exits 1."""
    vectors = json.loads(wire_c.VECTORS.read_text())
    pkt = vectors["cases"][1]["packets"][1]
    vectors["cases"][1]["packets"][1] = pkt[:-2] + f"{int(pkt[-2:], 16) ^ 1:02x}"
    path = tmp_path / "wire_v3.json"
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
    del old["cases"][0]["tag_len"]
    bad.write_text(json.dumps(old))
    with pytest.raises(AcomError, match="v.json: no field 'tag_len'"):
        wire_c.check("host", bad)
    assert wire_c.main(["--board", "host", "--vectors", str(tmp_path / "none.json")]) == 2
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(AcomError, match="qemu-aarch64 not found|aarch64-linux-gnu-gcc not found"):
        wire_c.check("rpi4")


packets = st.builds(
    Packet, device_id=st.integers(0, 2**32 - 1), stream_id=st.integers(0, 2**16 - 1), seq=st.integers(0, 2**32 - 1),
    first_frame=st.integers(0, 2**32 - 1), codebook_id=st.integers(0, 2**64 - 1), n_q=st.integers(0, 255),
    n_frames=st.integers(0, 4097), payload=st.binary(max_size=1400), entropy_coded=st.booleans(),
    end_of_stream=st.booleans(), frames_per_packet=st.integers(0, 4097), stream_n_q=st.integers(0, 255))
keys = st.none() | st.binary(max_size=100)
TAG_LENGTHS = st.sampled_from([0, 4, 8, 16]) | st.integers(0, 255)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(p=packets, key=keys, tag_len=TAG_LENGTHS)
def test_c_encodes_any_full_packet_as_python_does(encoder, p, key, tag_len):
    """Any fields, payload, key and tag length: the same bytes, or the same refusal (n_q, n_frames, frames per
    packet, stream n_q, tag length, over 1400 bytes)."""
    record, want = wire_c.encode_record(wire_c.EncodeCase(p, key, tag_len))
    assert encoder(record) == [want]


def _context(data, p: Packet, key: bytes | None) -> StreamContext:
    """A context of p's stream, p following it (its full packet up to 300 packets before p, or after it), with
    the tag length its key implies; now and then one field of it, or the tag length, wrong."""
    fpp = p.frames_per_packet
    back = data.draw(st.integers(-300, 300))
    seq, first = p.seq - back, p.first_frame - back * fpp
    if not (0 <= seq < 2**32 and 0 <= first < 2**32 and fpp < 2**16):
        seq, first = p.seq, p.first_frame
    ctx = StreamContext(p.device_id, p.stream_id, p.codebook_id, seq, first, fpp, p.stream_n_q, p.entropy_coded,
                        0 if key is None else data.draw(st.sampled_from([4, 8, 16])), seq)
    spoil = data.draw(st.sampled_from([""] * 27 + ["device_id", "stream_id", "codebook_id", "seq", "first_frame",
                                                    "frames_per_packet", "n_q", "entropy_coded", "tag_len"]))
    if spoil:
        limit = {"stream_id": 2**16, "codebook_id": 2**64, "frames_per_packet": 2**16, "n_q": 256,
                 "entropy_coded": 2, "tag_len": 256}.get(spoil, 2**32)
        ctx = dataclasses.replace(ctx, **{spoil: data.draw(st.integers(0, limit - 1))})
        ctx.entropy_coded = bool(ctx.entropy_coded)
    return ctx


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), p=packets, key=keys, own_n_q=st.booleans(), own_n_frames=st.booleans())
def test_c_encodes_any_short_packet_as_python_does(encoder, data, p, key, own_n_q, own_n_frames):
    """Any packet against a context of its stream (n_q and n_frames the stream's or its own, seq before or
    after the context's, any key) or one field off: the same bytes, or the same refusal."""
    p = dataclasses.replace(p, n_q=p.n_q if own_n_q else p.stream_n_q,
                            n_frames=p.n_frames if own_n_frames else p.frames_per_packet)
    record, want = wire_c.encode_record(wire_c.EncodeCase(p, key, 0, _context(data, p, key)))
    assert encoder(record) == [want]


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
    """The same checks on the rpi4 build under qemu-aarch64, in one run: the packets wire_vectors encodes one by
    one, then 300 seeded records (packets full or short, codes to pack, bytes to frame)."""
    rng = np.random.default_rng(3)
    records, want = b"", []
    for e in wire_c.encode_cases():
        record, line = wire_c.encode_record(e)
        records, want = records + record, [*want, line]
    for _ in range(100):
        record, line = wire_c.encode_record(wire_c.random_encode_case(rng))
        records, want = records + record, [*want, line]
        sizes = [int(k) for k in rng.integers(1, 65537, int(rng.integers(1, 5)))]
        codes = np.stack([rng.integers(0, k, 30) for k in sizes])
        records += wire_c.pack_record(codes, sizes)
        want.append(wire_c.expected_encoding("C", pack_codes, codes, sizes))
        data = rng.integers(0, 3, int(rng.integers(0, 1400)), dtype=np.uint8).tobytes()
        records += wire_c.frame_record(data)
        want.append(f"F {len(frame_serial(data))} {frame_serial(data).hex()}")
    assert wire_c.run_encoder("rpi4", records) == want


@pytest.mark.parametrize("key,tag_len", [(None, 8), (b"device-key", 4), (b"device-key", 16)])
def test_c_device_sends_what_python_sends(key, tag_len):
    """send_codes.c built for this machine sends over UDP, byte for byte, the packets sender.stream_packets
    makes of the same streams (full and short ones, an empty stream, a last packet short of frames), and
    reports per stream the packets, their bytes and their payloads' bytes."""
    rng = np.random.default_rng(5)
    sizes, book = [64, 32], rng.bytes(32).hex()
    streams = [(3, 17, rng.integers(0, 32, (2, 53))), (3, 18, np.zeros((2, 0), dtype=np.int64)),
               (3, 33, rng.integers(0, 32, (2, 25)))]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        sent = device_c.send("host", streams, sizes, book, frames_per_packet=5, full_every=4, key=key,
                             tag_len=tag_len, udp=sock.getsockname())
        got = [sock.recv(2048) for _ in range(sum(r["packets"] for r in sent))]
    want = [stream_packets(c, sizes, codebook_id(book), device_id=d, stream_id=s, frames_per_packet=5, key=key,
                           tag_len=tag_len, full_every=4) for d, s, c in streams]
    assert got == [p for w in want for p in w]
    contexts = Contexts()
    payloads = [sum(len(decode_packet(d, key and {3: key}, contexts).payload) for d in w) for w in want]
    assert sent == [{"stream": s, "packets": len(w), "bytes": sum(map(len, w)), "payload_bytes": n}
                    for (_, s, _), w, n in zip(streams, want, payloads)]
    assert any(d[0] & 0x80 for d in got) and len({d[3] >> 2 & 3 for d in got if not d[0] & 0x80}) == 1


def test_c_device_refuses_settings_it_cannot_send():
    codes = [(1, 0, np.zeros((1, 4), dtype=np.int64))]
    for kwargs, message in (({"tag_len": 12, "key": b"k"}, "tag_len 12: expected one of 4, 8, 16"),
                            ({"frames_per_packet": 0}, "frames_per_packet 0: expected 1..4096"),
                            ({"full_every": 0}, "full_every 0: expected 1 or more")):
        with pytest.raises(AcomError, match=message):
            device_c.send("host", codes, [8], "00" * 32, **{"frames_per_packet": 2, **kwargs}, udp=("127.0.0.1", 9))
