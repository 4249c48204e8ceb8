"""The sending side of the wire format: a stream's codes cut into packets, as a device sends them.

Pure functions (bytes out); the simulated devices of tests and benchmarks and the Python edge client use them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from acom.runtime.wire import MAX_FRAMES, Packet, encode_packet, make_payload


def stream_packets(codes: np.ndarray,  # noqa: PLR0913 (keyword-only stream settings)
                   codebook_sizes: Sequence[int], book: int, *, device_id: int = 1,
                   stream_id: int = 0, frames_per_packet: int = 25, key: bytes | None = None, priors=None,
                   first_seq: int = 0, full_every: int = 1) -> list[bytes]:
    """Packets of codes ``[n_q, T]`` (``frames_per_packet`` frames each; the last one flagged end of stream).

    ``book`` is ``wire.codebook_id(bundle codebook hash)``; ``priors`` (a CodePriors) range-codes payloads.
    ``full_every``: one packet in this many (the first included) and the last one have the full header, the
    others the compact one (1: all full). The full ones are the receiver's context: compact packets that arrive
    before any full one of their stream wait for the next (the server holds them), so a lost full header costs
    latency, not frames.
    """
    if full_every < 1:
        raise ValueError(f"full_every {full_every}: expected 1 or more")
    codes = np.asarray(codes)
    n_q, total = codes.shape
    starts = list(range(0, total, frames_per_packet)) or [0]
    out = []
    for i, start in enumerate(starts):
        part = codes[:, start: start + frames_per_packet]
        payload, entropy = make_payload(part, codebook_sizes, priors)
        p = Packet(device_id=device_id, stream_id=stream_id, seq=first_seq + i, first_frame=start, codebook_id=book,
                   n_q=n_q, n_frames=part.shape[1], payload=payload, entropy_coded=entropy,
                   end_of_stream=i == len(starts) - 1)
        compact = i % full_every != 0 and i != len(starts) - 1 and n_q <= 15 and part.shape[1] < MAX_FRAMES
        out.append(encode_packet(p, key, compact))
    return out
