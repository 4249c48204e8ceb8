"""The sending side of the wire format: a stream's codes cut into packets, as a device sends them.

Pure functions (bytes out); the simulated devices of tests and benchmarks and the Python edge client use them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from acom.runtime.wire import DEFAULT_TAG, Packet, StreamContext, encode_packet, encode_short, make_payload


class StreamSender:
    """One stream's packets, one at a time (what a device keeps between packets).

    The first packet, one in ``full_every`` after it and the stream's last are full packets: they say the
    stream's settings (ids, codebook, coding, ``frames_per_packet``, the usual ``n_q``, the tag length) and
    are the receiver's context for the short packets between them. A short packet needs its first frame to
    follow from its seq (every packet before it held ``frames_per_packet`` frames); once one did not, the
    rest of the stream is sent full.
    """

    def __init__(self, book: int, *, device_id: int = 1, stream_id: int = 0,  # noqa: PLR0913 (stream settings)
                 frames_per_packet: int = 25, n_q: int = 1, key: bytes | None = None, tag_len: int = DEFAULT_TAG,
                 entropy_coded: bool = False, first_seq: int = 0, full_every: int = 8) -> None:
        if full_every < 1:
            raise ValueError(f"full_every {full_every}: expected 1 or more")
        self.book, self.device_id, self.stream_id = book, device_id, stream_id
        self.fpp, self.n_q = frames_per_packet, n_q
        self.key, self.tag_len = key, tag_len if key is not None else 0
        self.entropy_coded, self.seq, self.full_every = entropy_coded, first_seq, full_every
        self.next_frame, self.index = 0, 0
        self.context: StreamContext | None = None  # what the receiver holds after our last full packet
        self.regular = True  # every packet so far held frames_per_packet frames

    def packet(self, payload: bytes, n_q: int, n_frames: int, end: bool = False) -> bytes:
        """Bytes of the stream's next packet: ``payload`` holds ``n_frames`` frames of ``n_q`` stages."""
        p = Packet(self.device_id, self.stream_id, self.seq, self.next_frame, self.book, n_q, n_frames, payload,
                   self.entropy_coded, end, self.key is not None, frames_per_packet=self.fpp,
                   tag_len=self.tag_len, stream_n_q=self.n_q)
        full = self.context is None or self.index % self.full_every == 0 or end or not self.regular
        data = encode_packet(p, self.key, self.tag_len) if full else encode_short(p, self.context, self.key)
        if full:
            self.context = StreamContext.of(p)
        self.regular = self.regular and n_frames == self.fpp
        self.seq, self.next_frame, self.index = self.seq + 1, self.next_frame + n_frames, self.index + 1
        return data


def stream_packets(codes: np.ndarray,  # noqa: PLR0913 (keyword-only stream settings)
                   codebook_sizes: Sequence[int], book: int, *, device_id: int = 1,
                   stream_id: int = 0, frames_per_packet: int = 25, key: bytes | None = None,
                   tag_len: int = DEFAULT_TAG, priors=None, first_seq: int = 0, full_every: int = 1) -> list[bytes]:
    """Packets of codes ``[n_q, T]`` (``frames_per_packet`` frames each; the last one flagged end of stream).

    ``book`` is ``wire.codebook_id(bundle codebook hash)``; ``priors`` (a CodePriors) range-codes payloads;
    ``key`` signs them with ``tag_len``-byte tags. ``full_every``: see ``StreamSender`` (1: all full).
    """
    codes = np.asarray(codes)
    n_q, total = codes.shape
    sender = StreamSender(book, device_id=device_id, stream_id=stream_id, frames_per_packet=frames_per_packet,
                          n_q=n_q, key=key, tag_len=tag_len, entropy_coded=priors is not None, first_seq=first_seq,
                          full_every=full_every)
    starts = list(range(0, total, frames_per_packet)) or [0]
    out = []
    for i, start in enumerate(starts):
        part = codes[:, start: start + frames_per_packet]
        payload, _ = make_payload(part, codebook_sizes, priors)
        out.append(sender.packet(payload, n_q, part.shape[1], end=i == len(starts) - 1))
    return out
