"""codes.framing's byte counts (what every report's wire rate is computed with) against the packets the wire
format actually writes."""

from __future__ import annotations

import numpy as np
import pytest

from acom.codes.framing import Framing, framed_bps, session_payloads, session_rates, stream_bytes
from acom.codes.priors import CodePriors
from acom.runtime.sender import stream_packets
from acom.runtime.wire import make_payload

rng = np.random.default_rng(5)
SIZES = [64, 1000]


@pytest.mark.parametrize("tag,full_every,entropy", [(0, 8, False), (4, 3, True), (8, 1, False), (16, 8, True)])
def test_stream_bytes_are_the_bytes_stream_packets_writes(tag, full_every, entropy) -> None:
    codes = [np.stack([rng.integers(0, 8, t), rng.integers(0, 1000, t)]) for t in (37, 90, 5)]
    priors = CodePriors.estimate(codes, SIZES) if entropy else None
    framing = Framing(packet_s=0.5, tag_len=tag, full_every=full_every)
    payloads = session_payloads(codes, SIZES, 20.0, framing, priors)  # 20 frames/s: 10 frames a packet
    session = np.concatenate(codes, axis=1)
    assert payloads == [len(make_payload(session[:, s: s + 10], SIZES, priors)[0]) for s in range(0, 132, 10)]
    sent = stream_packets(session, SIZES, 1, frames_per_packet=10, key=b"k" if tag else None, tag_len=tag or 8,
                          priors=priors, full_every=full_every)
    assert stream_bytes(payloads, framing) == sum(map(len, sent))
    rates = session_rates(codes, SIZES, 20.0, framing, priors)
    assert rates["wire_bps"] == round(8 * sum(map(len, sent)) / 6.6, 2) > rates["payload_bps"]


def test_a_codec_bitstream_framed_the_same_way() -> None:
    # 1 s packets of a 1,600 bit/s codec for 8 s: 200 bytes each; full first and last (36), six short (4)
    assert framed_bps(1600.0, 8.0, Framing()) == round(8 * (8 * 200 + 2 * 36 + 6 * 4) / 8, 2)
