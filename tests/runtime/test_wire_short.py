"""Short packets (v3): rebuilt from the stream's last full packet from the same source, checked against it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acom.errors import WireError
from acom.runtime.sender import StreamSender, stream_packets
from acom.runtime.sources import SourceContexts, TagGuard
from acom.runtime.wire import (
    Contexts,
    Packet,
    SerialDeframer,
    StreamContext,
    decode_packet,
    encode_packet,
    encode_short,
    frame_serial,
    pack_codes,
    packet_codes,
)

KEYS = {7: b"device-seven-key"}
rng = np.random.default_rng(1)


def _stream(n_packets=10, fpp=25, sizes=(64,), full_every=4, key=None, first_seq=0, stream_id=2, tag_len=8):
    codes = np.stack([rng.integers(0, k, n_packets * fpp) for k in sizes])
    data = stream_packets(codes, list(sizes), 0xABC, device_id=7, stream_id=stream_id, frames_per_packet=fpp,
                          key=key, tag_len=tag_len, first_seq=first_seq, full_every=full_every)
    return codes, data


@pytest.mark.parametrize("key,tag_len", [(None, 0), (KEYS[7], 4), (KEYS[7], 8), (KEYS[7], 16)])
def test_short_stream_round_trip_and_size(key, tag_len) -> None:
    codes, data = _stream(key=key, tag_len=tag_len)
    contexts = Contexts()
    got = [decode_packet(d, KEYS if key else None, contexts) for d in data]
    assert [p.compact for p in got] == [i % 4 != 0 and i != 9 for i in range(10)]  # the end packet is full
    assert [p.seq for p in got] == list(range(10)) and got[-1].end_of_stream
    assert [p.first_frame for p in got] == list(range(0, 250, 25))
    assert {(p.device_id, p.stream_id, p.codebook_id, p.tag_len) for p in got} == {(7, 2, 0xABC, tag_len)}
    np.testing.assert_array_equal(np.concatenate([packet_codes(p, [64]) for p in got], axis=1), codes)
    # 19 bytes of codes a second: 2 bytes of header and a CRC-16 or the tag (short), against 32 + CRC-32C or tag
    assert [len(d) for d in data[:2]] == [19 + 32 + (tag_len or 4), 19 + 2 + (tag_len or 2)]


def test_short_without_its_full_packet_is_refused_then_recovers() -> None:
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


def test_sequence_numbers_extend_across_8_bit_wraps_222_losses_and_32_late() -> None:
    _, data = _stream(n_packets=800, fpp=2, full_every=1000, first_seq=65_500)
    contexts = Contexts()
    got = [decode_packet(d, None, contexts) for d in data[:300]]
    assert [p.seq for p in got] == list(range(65_500, 65_800))
    assert [p.first_frame for p in got] == list(range(0, 600, 2))
    assert decode_packet(data[299 + 223], None, contexts).seq == 65_500 + 522  # 222 lost in a row: still right
    assert decode_packet(data[522 - 32], None, contexts).seq == 65_500 + 490  # 32 packets late: still right
    for late_or_lost in (522 - 33, 522 + 224):  # beyond: extended to the wrong seq, which the CRC refuses
        with pytest.raises(WireError) as e:
            decode_packet(data[late_or_lost], None, contexts)
        assert e.value.reason == "crc"


def test_a_context_taken_over_by_another_stream_fails_the_check() -> None:
    for key, reason in ((None, "crc"), (KEYS[7], "tag")):
        _, old = _stream(stream_id=2, key=key)
        _, new = _stream(stream_id=2 + 16, key=key)  # same context number, another stream
        contexts, keys = Contexts(), KEYS if key else None
        decode_packet(old[0], keys, contexts)
        decode_packet(new[0], keys, contexts)  # the source's context 2 is now stream 18
        with pytest.raises(WireError) as e:  # the old stream's short packet rebuilds the wrong header
            decode_packet(old[1], keys, contexts)
        assert e.value.reason == reason
        assert decode_packet(new[1], keys, contexts).stream_id == 18


def test_a_tagged_short_packet_replayed_256_packets_later_fails() -> None:
    _, data = _stream(n_packets=300, fpp=1, full_every=100, key=KEYS[7], tag_len=4)
    contexts = Contexts()
    for d in data[:280]:
        decode_packet(d, KEYS, contexts)
    with pytest.raises(WireError) as e:  # seq 21 replayed: its low byte now means 277, which the tag refuses
        decode_packet(data[21], KEYS, contexts)
    assert e.value.reason == "tag"


def test_every_bit_flip_of_a_short_packet_is_a_wire_error() -> None:
    for key, tag_len in ((None, 0), (KEYS[7], 4)):
        _, data = _stream(n_packets=2, fpp=7, sizes=(1000, 7), full_every=2, key=key, tag_len=tag_len)
        for i in range(len(data[1]) * 8):
            contexts = Contexts()
            decode_packet(data[0], KEYS if key else None, contexts)
            bad = bytearray(data[1])
            bad[i // 8] ^= 1 << (i % 8)
            with pytest.raises(WireError):
                decode_packet(bytes(bad), KEYS if key else None, contexts)


def test_n_q_and_n_frames_may_differ_per_short_packet() -> None:
    sender = StreamSender(0xABC, device_id=7, stream_id=3, frames_per_packet=4, n_q=2, full_every=100)
    sizes = [64, 64, 64]
    parts = [rng.integers(0, 64, (2, 4)), rng.integers(0, 64, (3, 4)), rng.integers(0, 64, (1, 4)),
             rng.integers(0, 64, (2, 3))]
    data = [sender.packet(pack_codes(c, sizes), c.shape[0], c.shape[1], end=False) for c in parts]
    contexts = Contexts()
    got = [decode_packet(d, None, contexts) for d in data]
    assert [p.compact for p in got] == [False, True, True, True] and [p.n_q for p in got] == [2, 3, 1, 2]
    assert [len(d) - len(p.payload) for d, p in zip(data, got)] == [36, 5, 5, 6]  # + n_q byte, + n_frames
    for c, p in zip(parts, got):
        np.testing.assert_array_equal(packet_codes(p, sizes), c)
    # after a packet of 3 frames the stream is no longer regular: its first frames do not follow from seq
    assert decode_packet(sender.packet(pack_codes(parts[0], sizes), 2, 4), None, contexts).compact is False


def test_short_packets_that_do_not_follow_their_stream_are_refused() -> None:
    full = Packet(7, 2, 10, 250, 1, 1, 25, b"\x00" * 19, frames_per_packet=25, stream_n_q=1)
    ctx = StreamContext.of(full)
    with pytest.raises(WireError, match="send it as a full packet"):  # its first frame is not 10 * 25 + 25
        encode_short(Packet(7, 2, 11, 260, 1, 1, 25, b"\x00" * 19, frames_per_packet=25, stream_n_q=1), ctx)
    with pytest.raises(WireError, match="send it as a full packet"):  # another stream
        encode_short(Packet(7, 3, 11, 275, 1, 1, 25, b"\x00" * 19, frames_per_packet=25, stream_n_q=1), ctx)
    with pytest.raises(WireError, match="key missing"):  # the stream is tagged
        encode_short(Packet(7, 2, 11, 275, 1, 1, 25, b"", frames_per_packet=25, stream_n_q=1),
                     StreamContext.of(Packet(7, 2, 10, 250, 1, 1, 25, b"", tag_len=8, frames_per_packet=25,
                                             stream_n_q=1)))
    with pytest.raises(ValueError, match="full_every 0"):
        stream_packets(np.zeros((1, 4), int), [2], 1, full_every=0)


def test_sources_have_their_own_contexts_and_are_bounded() -> None:
    _, data = _stream()
    sources = SourceContexts(max_sources=3)
    sources.decode(("127.0.0.1", 5000), data[0])
    with pytest.raises(WireError) as e:  # another source cannot use that context
        sources.decode(("127.0.0.1", 5001), data[1])
    assert e.value.reason == "context"
    assert sources.decode(("127.0.0.1", 5000), data[1]).seq == 1
    for port in range(6000, 6003):
        sources.keep(("127.0.0.1", port), sources.get(("127.0.0.1", port)))
    with pytest.raises(WireError):  # the least recently heard source was forgotten
        sources.decode(("127.0.0.1", 5000), data[2])


def test_held_short_packets_are_released_by_their_full_packet_or_expire() -> None:
    _, data = _stream(full_every=4)
    sources, src = SourceContexts(max_held=3), ("127.0.0.1", 5000)
    assert [sources.hold(src, d, now) for d, now in zip(data[1:4], (0.0, 0.1, 0.2))] == [0, 0, 0]
    assert sources.release(("127.0.0.1", 5001), (3, 2)) == [] and sources.release(src, (3, 3)) == []
    full = sources.decode(src, data[4])  # the next full packet of the stream
    assert [sources.decode(src, d).seq for d in sources.release(src, full.context)] == [1, 2, 3]
    assert sources.release(src, full.context) == []
    assert [sources.hold(src, d, 1.0) for d in data[5:8]] == [0, 0, 0]
    assert sources.hold(src, data[9], 2.0) == 1  # over max_held: the oldest is pushed out
    assert sources.expire(5.0, 3.5) == 2 and sources.expire(5.0, 0) == 1


def test_packets_that_fail_their_checks_create_and_evict_no_source_state() -> None:
    _, data = _stream(key=KEYS[7])
    sources, device = SourceContexts(max_sources=2), ("127.0.0.1", 5000)
    sources.decode(device, data[0], KEYS)
    for port in range(6000, 6100):  # forged full packets from 100 other addresses
        forged = data[0][:-8] + bytes(8)
        with pytest.raises(WireError):
            sources.decode(("127.0.0.1", port), forged, KEYS)
    assert sources.decode(device, data[1], KEYS).seq == 1  # the device's context is still there


def test_one_source_cannot_fill_the_held_packets_of_all() -> None:
    _, data = _stream()
    sources = SourceContexts(max_held=20, max_held_per_source=4)
    flood = [sources.hold(("10.0.0.1", 9), data[1], 0.0) for _ in range(10)]
    assert flood == [0] * 4 + [1] * 6  # beyond its share the newcomer is dropped, and counted
    assert sources.hold(("127.0.0.1", 5000), data[2], 0.1) == 0
    assert len(sources.release(("127.0.0.1", 5000), (3, 2))) == 1


def test_a_source_that_sends_many_bad_tags_is_ignored_for_a_while() -> None:
    guard, src = TagGuard(limit=3, window=10.0, ban=60.0), ("127.0.0.1", 5000)
    assert [guard.bad_tag(src, t) for t in (0.0, 1.0, 2.0)] == [False] * 3 and not guard.ignored(src, 2.0)
    assert guard.bad_tag(src, 20.0) is False  # the first three are older than the window
    assert [guard.bad_tag(src, t) for t in (21.0, 22.0, 23.0)] == [False, False, True]
    assert guard.ignored(src, 50.0) and not guard.ignored(("127.0.0.1", 5001), 50.0)
    assert not guard.ignored(src, 84.0) and guard.banned == 0  # the ban ends


def test_serial_line_keeps_its_contexts() -> None:
    codes, data = _stream(key=KEYS[7])
    deframer = SerialDeframer(KEYS)
    got = [r for d in data for r in deframer.feed(b"junk" * (d is data[3]) + frame_serial(d))]
    # the junk before packet 3 (short) spoils only that frame
    assert [type(r).__name__ for r in got] == ["Packet"] * 3 + ["WireError"] + ["Packet"] * 6
    assert [r.seq for r in got if isinstance(r, Packet)] == [0, 1, 2, 4, 5, 6, 7, 8, 9]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_any_bytes_with_contexts_give_a_packet_or_a_wire_error(data: bytes) -> None:
    contexts = Contexts()
    decode_packet(encode_packet(Packet(7, 2, 5, 125, 1, 1, 4, pack_codes(np.zeros((1, 4), int), [64]),
                                       frames_per_packet=4, stream_n_q=1)), None, contexts)
    for raw in (data, b"\x82" + data, bytes([0xB2, 6]) + data, b"a" + data, b"AC\x03" + data):
        try:
            assert isinstance(decode_packet(raw, None, contexts), Packet)
        except WireError:
            pass
