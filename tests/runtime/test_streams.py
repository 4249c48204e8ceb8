"""Stream reassembly: order, duplicates, loss, replay, ends; and a property test over random networks."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from acom.runtime.streams import Reassembler, ReassemblyConfig
from acom.runtime.wire import Packet

FPP = 5  # frames per packet


def pkt(seq: int, *, stream: int = 0, device: int = 1, end: bool = False, frames: int = FPP,
        first: int | None = None) -> tuple[Packet, np.ndarray]:
    first = seq * FPP if first is None else first
    codes = np.full((1, frames), seq % 64)
    return Packet(device, stream, seq, first, 0, 1, frames, b"", end_of_stream=end), codes


def feed(r: Reassembler, seqs, now: float = 0.0, **kw):
    chunks, reasons, ended = [], [], []
    for seq in seqs:
        d, reason = r.accept(*pkt(seq, **kw), now)
        chunks += [c for _, c in d.chunks]
        ended += [why for _, why in d.ended]
        reasons.append(reason)
    return chunks, reasons, ended


def test_in_order_and_end():
    r = Reassembler()
    chunks, reasons, _ = feed(r, [0, 1, 2])
    assert reasons == [None] * 3 and [c.first_frame for c in chunks] == [0, 5, 10]
    d, reason = r.accept(*pkt(3, end=True), 0.0)
    assert reason is None and d.ended == [((1, 0), "end")] and not r.streams


def test_reorder_within_window_delivers_in_order():
    r = Reassembler()
    chunks, reasons, _ = feed(r, [0, 2, 3, 1])
    assert reasons == [None] * 4
    assert [c.first_frame for c in chunks] == [0, 5, 10, 15]  # 2 and 3 waited for 1
    assert all(c.codes is not None for c in chunks)


def test_duplicates_and_late_packets_are_dropped_not_applied_twice():
    r = Reassembler(ReassemblyConfig(reorder_timeout=0.1))
    _, reasons, _ = feed(r, [0, 1, 1, 0])
    assert reasons == [None, None, "duplicate", "duplicate"]
    _, reasons, _ = feed(r, [3, 3])  # 3 waits for 2; its copy is a duplicate too
    assert reasons == [None, "duplicate"]
    d = r.tick(1.0)  # 2 never came: its frames are declared lost, 3 delivered
    assert [(c.first_frame, c.n_frames, c.codes is None, c.seqs) for _, c in d.chunks] == [
        (10, 5, True, (2, 2)), (15, 5, False, (3, 3))]
    _, reasons, _ = feed(r, [2])  # arrives after its frames were given up: late
    assert reasons == ["late"]


def test_far_ahead_packet_forces_loss_and_bounds_memory():
    cfg = ReassemblyConfig(window=4)
    r = Reassembler(cfg)
    chunks, reasons, _ = feed(r, [0, 9])  # 9 >= next (1) + window: 1..5 are given up
    assert reasons == [None, None]
    assert [(c.first_frame, c.codes is None) for c in chunks] == [(0, False)]
    assert r.streams[(1, 0)].next_seq == 6 and len(r.streams[(1, 0)].waiting) == 1
    chunks, _, _ = feed(r, [6, 7, 8])
    assert [(c.first_frame, c.n_frames, c.codes is None) for c in chunks] == [
        (5, 25, True), (30, 5, False), (35, 5, False), (40, 5, False), (45, 5, False)]


def test_replay_window_and_closed_streams():
    keyed = Reassembler(ReassemblyConfig(window=4), keyed=True)
    feed(keyed, range(10))
    _, reasons, _ = feed(keyed, [2])
    assert reasons == ["replay"]  # older than the window
    feed(keyed, [10], end=True)
    _, reasons, _ = feed(keyed, [0])  # a whole stream replayed after its end
    assert reasons == ["replay"]
    assert keyed.tick(1e9).ended == []  # and it stays refused (keys: for the server's lifetime)
    assert feed(keyed, [0])[1] == ["replay"]
    open_ = Reassembler(ReassemblyConfig(linger=5.0))
    feed(open_, [0], end=True)
    assert feed(open_, [0], now=1.0)[1] == ["closed"]
    open_.tick(10.0)
    assert feed(open_, [0], now=10.0)[1] == [None]  # without keys the id is reusable after the linger time


def test_idle_timeout_and_shutdown_end_streams():
    r = Reassembler(ReassemblyConfig(idle_timeout=2.0, reorder_timeout=5.0))
    feed(r, [0], stream=1)
    feed(r, [0, 2], stream=2, now=1.5)
    d = r.tick(2.5)
    assert ((1, 1), "idle") in d.ended and (1, 2) in r.streams
    d = r.close_all(3.0)
    assert [(c.first_frame, c.codes is None) for _, c in d.chunks] == [(5, True), (10, False)]
    assert d.ended == [((1, 2), "shutdown")] and not r.streams


def test_overlapping_frames_are_refused_and_gaps_in_frames_marked():
    r = Reassembler()
    feed(r, [0])
    d, _ = r.accept(*pkt(1, first=3), 0.0)  # frames 3..7 overlap 0..4
    assert d.dropped == [((1, 0), "frames")] and not d.chunks
    d, _ = r.accept(*pkt(2, first=20), 0.0)  # the device skipped frames 5..19
    assert [(c.first_frame, c.n_frames, c.codes is None) for _, c in d.chunks] == [(5, 15, True), (20, 5, False)]


def test_too_many_streams_refused():
    r = Reassembler(ReassemblyConfig(max_streams=2))
    assert [feed(r, [0], stream=s)[1][0] for s in range(3)] == [None, None, "streams"]


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 40), data=st.data())
def test_any_network_delivers_each_frame_once_in_order(n, data):
    """Drop, duplicate and reorder packets at random: frames come out once each, in order, gaps marked."""
    order = []
    for seq in range(n):
        if data.draw(st.booleans(), label=f"keep {seq}") or seq == n - 1:
            order += [seq] * data.draw(st.integers(1, 2), label=f"copies {seq}")
    order = data.draw(st.permutations(order), label="order")
    r, t, got = Reassembler(ReassemblyConfig(window=8, reorder_timeout=0.5)), 0.0, []
    for seq in order:
        t += data.draw(st.sampled_from([0.0, 0.2, 0.6]), label="gap")
        got += [c for _, c in r.tick(t).chunks]
        d, _ = r.accept(*pkt(seq, end=seq == n - 1), t)
        got += [c for _, c in d.chunks]
    got += [c for _, c in r.close_all(t + 10).chunks]
    frames = [f for c in got for f in range(c.first_frame, c.first_frame + c.n_frames)]
    assert frames == list(range(len(frames)))  # contiguous from 0, no frame twice
    received = {s for s in order}
    for c in got:
        if c.codes is not None:
            assert c.seqs[0] in received and (c.codes == c.seqs[0] % 64).all()
    applied = [c.seqs[0] for c in got if c.codes is not None]
    assert len(applied) == len(set(applied))  # no packet applied twice


def test_packets_after_the_end_packet_behind_a_gap_are_dropped_not_a_crash():
    """Found by bench/fuzz_cov.py: seq 0 lost, the end packet (1) and a packet after it (2) waiting. Giving the
    gap up released the end packet, which closed the stream, and then the packet after it closed it again."""
    for give_up in ("tick", "close_all"):
        r = Reassembler(ReassemblyConfig(reorder_timeout=0.1))
        r.accept(*pkt(1, end=True), 0.0)
        r.accept(*pkt(2), 0.0)
        d = r.tick(1.0) if give_up == "tick" else r.close_all(1.0)
        assert d.ended == [((1, 0), "end")] and d.dropped == [((1, 0), "closed")] and not r.streams
        assert [(c.first_frame, c.codes is None) for _, c in d.chunks] == [(0, True), (5, False)]
