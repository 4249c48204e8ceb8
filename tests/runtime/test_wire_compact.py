"""Compact packets: expanded with the stream's last full packet from the same source, checked against it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acom.errors import WireError
from acom.runtime.sender import stream_packets
from acom.runtime.wire import (
    COMPACT_SIZE,
    Contexts,
    Packet,
    SerialDeframer,
    SourceContexts,
    decode_packet,
    encode_packet,
    frame_serial,
    pack_codes,
    packet_codes,
)

KEYS = {7: b"device-seven-key"}
rng = np.random.default_rng(1)


def _stream(n_packets=10, fpp=25, sizes=(64,), full_every=4, key=None, first_seq=0, stream_id=2):
    codes = np.stack([rng.integers(0, k, n_packets * fpp) for k in sizes])
    data = stream_packets(codes, list(sizes), 0xABC, device_id=7, stream_id=stream_id, frames_per_packet=fpp,
                          key=key, first_seq=first_seq, full_every=full_every)
    return codes, data


@pytest.mark.parametrize("key", [None, KEYS[7]])
def test_compact_stream_round_trip_and_size(key) -> None:
    codes, data = _stream(key=key)
    contexts = Contexts()
    got = [decode_packet(d, KEYS if key else None, contexts) for d in data]
    assert [p.compact for p in got] == [i % 4 != 0 and i != 9 for i in range(10)]  # the end packet is full
    assert [p.seq for p in got] == list(range(10)) and got[-1].end_of_stream
    assert {(p.device_id, p.stream_id, p.codebook_id) for p in got} == {(7, 2, 0xABC)}
    np.testing.assert_array_equal(np.concatenate([packet_codes(p, [64]) for p in got], axis=1), codes)
    # 19 bytes of codes a second: 13 bytes of header + CRC compact against 35 full (+ 16 with a tag)
    assert [len(d) for d in data[:2]] == [19 + 35 + 16 * bool(key), 19 + 13 + 16 * bool(key)]


def test_compact_without_its_full_packet_is_refused_then_recovers() -> None:
    _, data = _stream(full_every=4)
    contexts = Contexts()
    for d in data[1:4]:  # the first full packet was lost: no context yet
        with pytest.raises(WireError) as e:
            decode_packet(d, None, contexts)
        assert e.value.reason == "context"
    assert [decode_packet(d, None, contexts).seq for d in data[4:]] == list(range(4, 10))
    with pytest.raises(WireError, match="no stream contexts") as e:  # a reader without contexts says so
        decode_packet(data[1])
    assert e.value.reason == "context"


def test_sequence_numbers_and_frames_extend_across_16_bit_wraps() -> None:
    codes, data = _stream(n_packets=70, fpp=1000, full_every=1000, first_seq=65_500)
    contexts = Contexts()
    got = [decode_packet(d, None, contexts) for d in data]
    assert [p.seq for p in got] == list(range(65_500, 65_570))
    assert [p.first_frame for p in got] == list(range(0, 70_000, 1000))  # first_frame wraps at packet 66


def test_a_context_taken_over_by_another_stream_fails_the_crc() -> None:
    _, old = _stream(stream_id=2)
    _, new = _stream(stream_id=2 + 256)  # same context byte, another stream
    contexts = Contexts()
    decode_packet(old[0], None, contexts)
    decode_packet(new[0], None, contexts)  # the source's context 2 is now stream 258
    with pytest.raises(WireError) as e:  # the old stream's compact packet rebuilds the wrong header
        decode_packet(old[1], None, contexts)
    assert e.value.reason == "crc"
    assert decode_packet(new[1], None, contexts).stream_id == 258


def test_every_bit_flip_of_a_compact_packet_is_a_wire_error() -> None:
    for key in (None, KEYS[7]):
        _, data = _stream(n_packets=2, fpp=7, sizes=(1000, 7), full_every=2, key=key)
        for i in range(len(data[1]) * 8):
            contexts = Contexts()
            decode_packet(data[0], KEYS if key else None, contexts)
            bad = bytearray(data[1])
            bad[i // 8] ^= 1 << (i % 8)
            with pytest.raises(WireError):
                decode_packet(bytes(bad), KEYS if key else None, contexts)


def test_compact_packets_that_do_not_fit_are_refused_or_sent_full() -> None:
    p = Packet(7, 2, 0, 0, 1, 16, 1, b"\x00" * 2)
    with pytest.raises(WireError, match="n_q 16: expected 1..15 in a compact packet"):
        encode_packet(p, compact=True)
    with pytest.raises(WireError, match="n_frames 4096"):
        encode_packet(Packet(7, 2, 0, 0, 1, 1, 4096, b"\x00" * 3072), compact=True)
    codes = rng.integers(0, 2, (16, 4))
    data = stream_packets(codes, [2] * 16, 1, full_every=2)  # 16 stages: every packet full
    assert all(d[:2] == b"AC" for d in data)
    with pytest.raises(ValueError, match="full_every 0"):
        stream_packets(codes, [2] * 16, 1, full_every=0)


def test_sources_have_their_own_contexts_and_are_bounded() -> None:
    _, data = _stream()
    sources = SourceContexts(max_sources=3)
    decode_packet(data[0], None, sources.get(("127.0.0.1", 5000)))
    with pytest.raises(WireError) as e:  # another source cannot use that context
        decode_packet(data[1], None, sources.get(("127.0.0.1", 5001)))
    assert e.value.reason == "context"
    assert decode_packet(data[1], None, sources.get(("127.0.0.1", 5000))).seq == 1
    for port in range(6000, 6003):
        sources.get(("127.0.0.1", port))
    with pytest.raises(WireError):  # the least recently heard source was forgotten
        decode_packet(data[2], None, sources.get(("127.0.0.1", 5000)))


def test_held_compact_packets_are_released_by_their_full_header_or_expire() -> None:
    _, data = _stream(full_every=4)
    sources, src = SourceContexts(max_held=3), ("127.0.0.1", 5000)
    assert [sources.hold(src, d, now) for d, now in zip(data[1:4], (0.0, 0.1, 0.2))] == [0, 0, 0]
    assert sources.release(("127.0.0.1", 5001), 2) == [] and sources.release(src, 3) == []
    decode_packet(data[4], None, sources.get(src))  # the next full packet of the stream
    assert [decode_packet(d, None, sources.get(src)).seq for d in sources.release(src, 2)] == [1, 2, 3]
    assert sources.release(src, 2) == []
    assert [sources.hold(src, d, 1.0) for d in data[5:8]] == [0, 0, 0]
    assert sources.hold(src, data[9], 2.0) == 1  # over max_held: the oldest is pushed out
    assert sources.expire(5.0, 3.5) == 2 and sources.expire(5.0, 0) == 1


def test_serial_line_keeps_its_contexts() -> None:
    codes, data = _stream(key=KEYS[7])
    deframer = SerialDeframer(KEYS)
    got = [r for d in data for r in deframer.feed(b"junk" * (d is data[3]) + frame_serial(d))]
    # the junk before packet 3 (compact) spoils only that frame
    assert [type(r).__name__ for r in got] == ["Packet"] * 3 + ["WireError"] + ["Packet"] * 6
    assert [r.seq for r in got if isinstance(r, Packet)] == [0, 1, 2, 4, 5, 6, 7, 8, 9]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_any_bytes_with_contexts_give_a_packet_or_a_wire_error(data: bytes) -> None:
    contexts = Contexts()
    decode_packet(encode_packet(Packet(7, 2, 5, 125, 1, 1, 4, pack_codes(np.zeros((1, 4), int), [64]))), None,
                  contexts)
    for raw in (data, b"a" + data, bytes([0x61, 0x2A, 2]) + data, data[:COMPACT_SIZE] + data):
        try:
            assert isinstance(decode_packet(raw, None, contexts), Packet)
        except WireError:
            pass
