"""Version 2 packets, which devices in the field may still send: read (full and compact), checked, held."""

from __future__ import annotations

import numpy as np
import pytest

from acom.errors import WireError
from acom.runtime.sources import SourceContexts
from acom.runtime.wire import Contexts, Packet, decode_packet, pack_codes, packet_codes
from acom.runtime.wire_v2 import encode_v2

KEYS = {7: b"device-seven-key"}
rng = np.random.default_rng(2)


def _v2_stream(n=6, fpp=25, key=None, first_seq=0, stream_id=2, full_every=3):
    codes = rng.integers(0, 64, (1, n * fpp))
    data = [encode_v2(Packet(7, stream_id, first_seq + i, i * fpp, 0xABC, 1, fpp,
                             pack_codes(codes[:, i * fpp: (i + 1) * fpp], [64]), end_of_stream=i == n - 1),
                      key, compact=i % full_every != 0 and i != n - 1) for i in range(n)]
    return codes, data


@pytest.mark.parametrize("key", [None, KEYS[7]])
def test_v2_full_and_compact_packets_are_read(key) -> None:
    codes, data = _v2_stream(key=key)
    contexts = Contexts()
    got = [decode_packet(d, KEYS if key else None, contexts) for d in data]
    assert [(p.version, p.compact) for p in got] == [(2, False), (2, True), (2, True), (2, False), (2, True),
                                                     (2, False)]
    assert [p.seq for p in got] == list(range(6)) and got[-1].end_of_stream
    np.testing.assert_array_equal(np.concatenate([packet_codes(p, [64]) for p in got], axis=1), codes)
    assert [len(d) - len(p.payload) for d, p in zip(data, got)][:2] == [35 + 16 * bool(key), 13 + 16 * bool(key)]


def test_v2_compact_sequence_numbers_extend_across_16_bit_wraps() -> None:
    _, data = _v2_stream(n=8, fpp=1, first_seq=65_533, full_every=100)
    contexts = Contexts()
    assert [decode_packet(d, None, contexts).seq for d in data] == list(range(65_533, 65_541))


def test_v2_compact_packets_are_held_until_their_full_packet_and_checked() -> None:
    _, data = _v2_stream()
    sources, src = SourceContexts(), ("127.0.0.1", 5000)
    with pytest.raises(WireError) as e:
        sources.decode(src, data[1])
    assert e.value.reason == "context"
    sources.hold(src, data[1], 0.0)
    full = sources.decode(src, data[3])
    assert [sources.decode(src, d).seq for d in sources.release(src, full.context)] == [1]
    _, other = _v2_stream(stream_id=2 + 256)  # same v2 context byte, another stream: the CRC fails
    sources.decode(src, other[0])
    with pytest.raises(WireError) as e:
        sources.decode(src, data[4])
    assert e.value.reason == "crc"


def test_a_v2_compact_packet_extended_past_32_bits_is_a_wire_error() -> None:
    top = (1 << 32) - 2
    full = encode_v2(Packet(7, 2, top, top, 0xABC, 1, 1, pack_codes(np.zeros((1, 1), int), [64]), version=2))
    compact = encode_v2(Packet(7, 2, top + 3 - (1 << 32), 5, 0xABC, 1, 1, pack_codes(np.zeros((1, 1), int), [64]),
                               version=2), compact=True)  # low 16 bits past the top: extends beyond 2^32
    contexts = Contexts()
    decode_packet(full, None, contexts)
    with pytest.raises(WireError, match="past 32 bits") as e:
        decode_packet(compact, None, contexts)
    assert e.value.reason == "field"
