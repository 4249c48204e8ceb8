"""Wire format v3 full packets (short ones: test_wire_short.py; v2: test_wire_v2.py): round trips from one table
of cases, every corruption a WireError, serial resync, vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acom.errors import WireError
from acom.runtime import vectors
from acom.runtime.vectors import VECTORS_DIR
from acom.runtime.wire import (
    HEADER_SIZE,
    MAX_PACKET,
    Contexts,
    Packet,
    SerialDeframer,
    codebook_id,
    decode_packet,
    encode_packet,
    frame_serial,
    make_payload,
    pack_codes,
    packet_codes,
    unpack_codes,
)

VECTORS = VECTORS_DIR
KEYS = {7: b"device-seven-key", 9: b"another-key"}
rng = np.random.default_rng(0)
# (codebook sizes, n_q sent, frames, tag bytes (0: none), end of stream): the table that drives pack and unpack
CASES = [([64], 1, 25, 0, False), ([64, 64, 64], 2, 25, 16, False), ([1024], 1, 25, 0, True),
         ([1000, 7, 2], 3, 13, 4, True), ([64, 64], 2, 0, 0, True), ([65536], 1, 100, 8, False),
         ([2], 1, 1, 0, False)]


def _packet(sizes, n_q, frames, tagged, end, seq=3):
    codes = np.stack([rng.integers(0, k, frames) for k in sizes[:n_q]]) if frames else np.zeros((n_q, 0), int)
    p = Packet(device_id=7, stream_id=2, seq=seq, first_frame=25 * seq, codebook_id=codebook_id("ab" * 32),
               n_q=n_q, n_frames=frames, payload=pack_codes(codes, sizes), end_of_stream=end,
               frames_per_packet=25, stream_n_q=n_q)
    return codes, p, encode_packet(p, KEYS[7] if tagged else None, tagged or 8)


@pytest.mark.parametrize("sizes,n_q,frames,tagged,end", CASES)
def test_round_trip(sizes, n_q, frames, tagged, end) -> None:
    codes, p, data = _packet(sizes, n_q, frames, tagged, end)
    got = decode_packet(data, KEYS if tagged else None)
    assert got.payload == p.payload and (got.seq, got.first_frame, got.end_of_stream) == (3, 75, end)
    assert (got.tag_len, got.frames_per_packet, got.stream_n_q, got.version) == (tagged, 25, n_q, 3)
    assert len(data) == 32 + len(p.payload) + (tagged or 4)  # header, payload, the tag or a CRC-32C
    np.testing.assert_array_equal(packet_codes(got, sizes), codes)
    bits = sum((k - 1).bit_length() for k in sizes[:n_q])
    assert len(got.payload) == (bits * frames + 7) // 8  # exactly ceil(log2 K) bits per code, nothing more


@pytest.mark.parametrize("sizes,n_q,frames,tagged,end", CASES)
def test_every_bit_flip_is_a_wire_error(sizes, n_q, frames, tagged, end) -> None:
    _, _, data = _packet(sizes, n_q, frames, tagged, end)
    for i in range(len(data) * 8):
        bad = bytearray(data)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(WireError):
            decode_packet(bytes(bad), KEYS if tagged else None)
    for cut in range(len(data)):
        with pytest.raises(WireError):
            decode_packet(data[:cut])


def test_reasons_name_what_was_wrong() -> None:
    _, p, data = _packet([64], 1, 10, 0, False)
    cases = {b"XX" + data[2:]: "magic", data[:2] + b"\x01" + data[3:]: "version", data[:10]: "size",
             b"\x00" * (MAX_PACKET + 1): "size", data[:3] + b"\x40" + data[4:]: "flags", data[:35]: "length"}
    for bad, reason in cases.items():
        with pytest.raises(WireError) as e:
            decode_packet(bad)
        assert e.value.reason == reason
    with pytest.raises(WireError, match="no tag") as e:  # keys configured: an untagged packet is refused
        decode_packet(data, KEYS)
    assert e.value.reason == "tag"
    tagged = encode_packet(p, b"wrong key", 4)
    with pytest.raises(WireError, match="does not match"):
        decode_packet(tagged, KEYS)
    with pytest.raises(WireError, match="device 7 has no key"):
        decode_packet(tagged, {9: KEYS[9]})
    with pytest.raises(WireError, match="this reader has no keys") as e:  # a tag is the only check: not skipped
        decode_packet(tagged)
    assert e.value.reason == "tag"
    with pytest.raises(WireError, match="n_frames"):
        encode_packet(Packet(1, 1, 1, 0, 0, 1, 5000, b"", frames_per_packet=1, stream_n_q=1))
    with pytest.raises(WireError, match="frames_per_packet 0"):
        encode_packet(Packet(1, 1, 1, 0, 0, 1, 5, b"", stream_n_q=1))
    with pytest.raises(WireError, match="tag length 5"):
        encode_packet(p, KEYS[7], 5)
    for size in (1365, 70_000):  # over 1400 bytes with header and CRC, and over the payload length's 16 bits
        with pytest.raises(WireError, match="at most 1400") as e:
            encode_packet(Packet(1, 1, 1, 0, 0, 1, 5, b"\x00" * size, frames_per_packet=5, stream_n_q=1))
        assert e.value.reason == "size"
    with pytest.raises(WireError, match="codes outside"):
        pack_codes(np.array([[64]]), [64])


def test_entropy_coded_payload_round_trip() -> None:
    from acom.codes.priors import CodePriors

    sizes = [64, 64]
    train = [np.stack([rng.integers(0, 8, 200), rng.integers(0, 64, 200)]) for _ in range(5)]
    priors = CodePriors.estimate(train, sizes)
    codes = np.stack([rng.integers(0, 8, 25), rng.integers(0, 64, 25)])
    payload, entropy = make_payload(codes, sizes, priors)
    assert entropy and len(payload) < len(pack_codes(codes, sizes))
    p = decode_packet(encode_packet(Packet(1, 1, 0, 0, 5, 2, 25, payload, entropy_coded=True, frames_per_packet=25,
                                           stream_n_q=2)))
    np.testing.assert_array_equal(packet_codes(p, sizes, priors), codes)
    with pytest.raises(WireError, match="no priors"):
        packet_codes(p, sizes)


def test_serial_resynchronizes_after_garbage_byte_by_byte() -> None:
    packets = [_packet([64, 64], 2, 25, 16, i == 2, seq=i)[2] for i in range(3)]
    stream = b"\x13\x37garbage" + b"".join(frame_serial(d) for d in packets[:2]) + b"noise\xff\x00\x00" + \
        frame_serial(packets[2]) + b"trailing"
    deframer = SerialDeframer(KEYS)
    results = [r for byte in stream for r in deframer.feed(bytes([byte]))]
    good = [r for r in results if isinstance(r, Packet)]
    # the garbage before the first delimiter spoils the first frame only; every later packet arrives
    assert [p.seq for p in good] == [1, 2]
    assert good[-1].end_of_stream and all(isinstance(r, (Packet, WireError)) for r in results)
    whole = SerialDeframer(KEYS).feed(stream)
    assert [type(r).__name__ for r in whole] == [type(r).__name__ for r in results]


def test_serial_oversized_frame_is_dropped_with_bounded_memory() -> None:
    deframer = SerialDeframer()
    for _ in range(10):
        assert deframer.feed(b"\x01" * 1000) == []
    assert len(deframer._buf) <= SerialDeframer.MAX_FRAME
    (err,) = deframer.feed(b"\x00")
    assert isinstance(err, WireError) and err.reason == "size"
    _, _, data = _packet([64], 1, 5, 0, False)
    (ok,) = deframer.feed(frame_serial(data))
    assert isinstance(ok, Packet)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_packet_or_a_wire_error(data: bytes) -> None:
    try:
        decode_packet(data)
    except WireError:
        pass
    try:
        decode_packet(b"AC\x03" + data)
    except WireError:
        pass
    for r in SerialDeframer(KEYS).feed(data):
        assert isinstance(r, (Packet, WireError))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=HEADER_SIZE, max_size=HEADER_SIZE + 40), st.lists(st.integers(1, 65536), min_size=1,
                                                                              max_size=4))
def test_any_payload_unpacks_or_is_a_wire_error(payload: bytes, sizes: list[int]) -> None:
    try:
        codes = unpack_codes(payload, sizes, len(sizes), 3)
        assert codes.shape == (len(sizes), 3) and all(codes[s].max() < k for s, k in enumerate(sizes))
    except WireError:
        pass


def _read_vector_case(v: dict, case: dict) -> list[Packet]:
    """A case's packets decoded (and checked against its payloads, codes and serial frames)."""
    coded = vectors.priors_from_json(v["priors"]) if case.get("entropy_coded") else None
    keys = {7: case["hmac_key"].encode()} if case["hmac_key"] else None
    contexts, deframer = Contexts(), SerialDeframer(keys)
    got = [decode_packet(bytes.fromhex(h), keys, contexts) for h in case["packets"]]
    assert [p.payload.hex() for p in got] == case["payloads"] and got[-1].end_of_stream
    assert all(p.entropy_coded == bool(coded) for p in got)
    codes = np.concatenate([packet_codes(p, v["codebook_sizes"], coded) for p in got], axis=1)
    np.testing.assert_array_equal(codes, np.array(v["codes"])[: case["n_q"]])
    assert [q for h in case["serial"] for q in deframer.feed(bytes.fromhex(h))] == got
    return got


def test_vectors_are_reproduced() -> None:
    v = json.loads((VECTORS / "wire_v3.json").read_text())
    audio = np.frombuffer((VECTORS / "clip.raw").read_bytes(), "<f4")
    np.testing.assert_array_equal(audio, vectors.vector_audio())
    now = vectors.shipped_classifier_vectors()
    assert now["codebook_hash"] == v["codebook_hash"] and now["codes"] == v["codes"]
    assert now["cases"] == v["cases"] and now["priors"] == v["priors"]
    assert [c.get("entropy_coded", False) for c in v["cases"]] == [False] * 8 + [True] * 8
    for case in v["cases"]:
        got = _read_vector_case(v, case)
        assert [p.compact for p in got] == [False, True, True, False, False]
        tag = case["tag_len"]
        assert [len(bytes.fromhex(h)) - len(p.payload) for h, p in zip(case["packets"], got)] == \
            [32 + (tag or 4), 2 + (tag or 2), 2 + (tag or 2), 32 + (tag or 4), 32 + (tag or 4)]
        assert [p.seq % 256 for p in got][1:3] in ([255, 0], [0, 1])  # a short packet's seq byte wraps


def test_version_2_vectors_are_still_read() -> None:
    v = json.loads((VECTORS / "wire_v2.json").read_text())
    for case in v["cases"]:
        got = _read_vector_case(v, case)
        assert [(p.version, p.compact) for p in got] == [(2, False), (2, True), (2, False)]
    with pytest.raises(WireError, match="reads 2 and 3") as e:  # version 1 is refused, as before
        decode_packet(b"AC\x01" + bytes.fromhex(v["cases"][0]["packets"][0])[3:])
    assert e.value.reason == "version"
