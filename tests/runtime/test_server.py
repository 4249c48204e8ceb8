"""The server on real sockets (UDP on 127.0.0.1, a pty, a socket:// serial URL): results, rejections, counters."""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import socket
import struct
import time
import tty
import urllib.request

import numpy as np
from google_crc32c import value as crc32c

from acom.codes.priors import encode_codes
from acom.runtime.sender import stream_packets
from acom.runtime.server import ServeConfig, Server
from acom.runtime.streams import ReassemblyConfig
from acom.runtime.wire import Packet, codebook_id, encode_packet, frame_serial, pack_codes
from tests.runtime.conftest import offline_text

KEY = b"k" * 32


def run(bundle, scenario, *, keys=None, serial=(), config=ServeConfig(), metrics=False) -> tuple[list[dict], dict]:
    """Serve on 127.0.0.1, run ``scenario(server, udp_addr, out)`` (a coroutine), shut down; (lines, summary)."""
    out = io.StringIO()

    async def main():
        server = Server(bundle, out, config, keys)
        bound = await server.start(("127.0.0.1", 0), list(serial), metrics_port=0 if metrics else None)
        try:
            await scenario(server, bound, out)
        finally:
            summary = await server.shutdown()
        return summary

    summary = asyncio.run(asyncio.wait_for(main(), 120))
    return [json.loads(x) for x in out.getvalue().splitlines()][:-1], summary


async def until(predicate, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out waiting for the server"
        await asyncio.sleep(0.02)


def finals(out: io.StringIO) -> dict[tuple[int, int], dict]:
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    return {(r["device"], r["stream"]): r for r in lines if r.get("type") == "final"}


def send(addr, packets) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for p in packets:
            s.sendto(p, tuple(addr["udp"]))


def resealed(packet: bytes, offset: int, value: int) -> bytes:
    """``packet`` with one byte changed and a valid CRC again (a well-formed packet with a bad field)."""
    body = bytearray(packet[:-4])
    body[offset] = value
    return bytes(body) + struct.pack("<I", crc32c(bytes(body)))


def test_udp_streams_give_the_offline_transcripts_and_bad_packets_are_counted(asr_case):
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    streams = [stream_packets(c, sizes, book, device_id=5, stream_id=i, frames_per_packet=10)
               for i, c in enumerate(codes[:3])]
    other_book = stream_packets(codes[0], sizes, book ^ 1, device_id=6)[0]
    bad = [b"garbage", bytes(2000), other_book, resealed(streams[0][0], 2, 9), resealed(streams[0][0], 0, 0)]

    async def scenario(server, addr, out):
        send(addr, bad)  # first: one socket keeps the order, so they are counted before the last final
        for j in range(max(map(len, streams))):  # interleaved, as many devices would send
            send(addr, [s[j] for s in streams if j < len(s)])
            await asyncio.sleep(0.01)
        await until(lambda: len(finals(out)) == 3)

    lines, summary = run(bundle, scenario)
    got = {r["stream"]: r for r in lines if r["type"] == "final"}
    assert [got[i]["text"] for i in range(3)] == [offline_text(bundle, c) for c in codes[:3]]
    assert [got[i]["frames"] for i in range(3)] == [c.shape[1] for c in codes[:3]]
    assert all(r["latency_ms"] >= 0 and r["missing_frames"] == 0 for r in got.values())
    partial = [r for r in lines if r["type"] == "partial" and r["stream"] == 2]
    assert partial and all(a["frames"] <= b["frames"] for a, b in zip(partial, partial[1:]))
    assert summary["packets"] == {"accepted": sum(map(len, streams)), "size": 2, "codebook": 1, "version": 1,
                                  "magic": 1}
    assert summary["streams_ended"] == {"end": 3} and summary["frames"] == {"received": sum(c.shape[1] for c in
                                                                                            codes[:3])}


def test_loss_reordering_and_duplication_never_apply_a_packet_twice(asr_case):
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    rng = random.Random(4)
    plan, expect_missing = [], {}
    for i, c in enumerate(codes):
        packets = stream_packets(c, sizes, book, device_id=7, stream_id=i, frames_per_packet=5)
        dropped = {j for j in range(len(packets) - 1) if rng.random() < 0.1}  # 10% loss (the end arrives)
        expect_missing[i] = sum(min(5, c.shape[1] - 5 * j) for j in dropped)
        kept = [p for j, p in enumerate(packets) if j not in dropped]
        kept += [p for p in kept if rng.random() < 0.1]  # 10% duplicated
        plan.append(kept)
    sent = sum(map(len, plan))

    async def scenario(server, addr, out):
        for packets in plan:  # reordered: each stream's packets shuffled in windows of 4
            order = [p for k in range(0, len(packets), 4) for p in rng.sample(packets[k:k + 4], len(packets[k:k + 4]))]
            send(addr, order)
        # duplicates may come after a stream's end: wait until every datagram is counted, not only the finals
        await until(lambda: len(finals(out)) == len(codes)
                    and sum(server.metrics.snapshot()["packets"].values()) >= sent)

    lines, summary = run(bundle, scenario, config=ServeConfig(reassembly=ReassemblyConfig(reorder_timeout=0.3)))
    got = {r["stream"]: r for r in lines if r["type"] == "final"}
    accepted, dup = summary["packets"]["accepted"], summary["packets"].get("duplicate", 0)
    assert accepted + dup + summary["packets"].get("late", 0) == sent
    for i, c in enumerate(codes):
        assert got[i]["frames"] == c.shape[1] and got[i]["missing_frames"] == expect_missing[i]
    assert summary["frames"]["received"] + summary["frames"].get("lost", 0) == sum(c.shape[1] for c in codes)
    assert summary["frames"].get("lost", 0) == sum(expect_missing.values())


def test_keys_tags_and_replays(asr_case):
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    good = stream_packets(codes[0], sizes, book, device_id=3, stream_id=1, key=KEY)
    untagged = stream_packets(codes[1], sizes, book, device_id=3, stream_id=2)
    forged = stream_packets(codes[1], sizes, book, device_id=3, stream_id=3, key=b"x" * 32)
    unknown = stream_packets(codes[1], sizes, book, device_id=4, stream_id=1, key=KEY)

    async def scenario(server, addr, out):
        send(addr, good + untagged + forged + unknown)
        await until(lambda: len(finals(out)) == 1)
        send(addr, good)  # the whole stream again, after its end: a replay

        await until(lambda: server.metrics.snapshot()["packets"].get("replay", 0) == len(good))

    lines, summary = run(bundle, scenario, keys={3: KEY})
    assert [r["text"] for r in lines if r["type"] == "final"] == [offline_text(bundle, codes[0][:2])]
    assert summary["packets"] == {"accepted": len(good), "tag": len(untagged) + len(forged) + len(unknown),
                                  "replay": len(good)}


def test_a_source_guessing_4_byte_tags_is_ignored_and_others_are_served(asr_case):
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    good = stream_packets(codes[0], sizes, book, device_id=3, stream_id=1, key=KEY, tag_len=4, frames_per_packet=10)
    guesses = [p[:-4] + struct.pack("<I", i) for i, p in enumerate(good[:1] * 20)]  # the first packet, tags tried

    async def scenario(server, addr, out):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
            for p in guesses + good:  # after 5 bad tags this source is ignored: even its valid packets
                attacker.sendto(p, tuple(addr["udp"]))
            await until(lambda: server.metrics.snapshot()["packets"].get("ignored", 0) == 14 + len(good))
        send(addr, good)  # the same stream from another source is served
        await until(lambda: len(finals(out)) == 1)

    lines, summary = run(bundle, scenario, keys={3: KEY}, config=ServeConfig(max_bad_tags=5))
    assert [r["text"] for r in lines if r["type"] == "final"] == [offline_text(bundle, codes[0])]
    assert summary["packets"] == {"tag": 6, "source_ignored": 1, "ignored": 14 + len(good), "accepted": len(good)}


def test_packets_that_claim_too_many_frames_are_refused_before_any_work(asr_case):
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    zeros = min((encode_codes(np.full((1, 4096), c), bundle.priors) for c in range(sizes[0])), key=len)
    assert len(zeros) < 300  # 4,096 frames of the likeliest run of codes: a few bytes of range-coded payload
    big = encode_packet(Packet(5, 1, 0, 0, book, 1, 4096, zeros, entropy_coded=True, end_of_stream=True,
                               frames_per_packet=4096, stream_n_q=1))
    jump = encode_packet(Packet(5, 2, 0, 10_000, book, 1, 25, pack_codes(codes[0][:1, :25], sizes),
                                end_of_stream=True, frames_per_packet=25, stream_n_q=1))  # 10,000 frames "lost"
    good = stream_packets(codes[0], sizes, book, device_id=5, stream_id=3)

    async def scenario(server, addr, out):
        send(addr, [big, jump] + good)
        await until(lambda: len(finals(out)) == 1)

    lines, summary = run(bundle, scenario)  # 10 s of audio a packet and 30 s of gap at most (the defaults)
    assert [r["stream"] for r in lines if r["type"] == "final"] == [3]
    assert summary["packets"] == {"packet_frames": 1, "gap": 1, "accepted": len(good)}


def test_replays_stay_refused_after_a_restart_with_a_state_file(asr_case, tmp_path):
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    good = stream_packets(codes[0], sizes, book, device_id=3, stream_id=1, key=KEY)
    config = ServeConfig(state=tmp_path / "replay.json")

    async def first(server, addr, out):
        send(addr, good)
        await until(lambda: len(finals(out)) == 1)

    async def replayed(server, addr, out):
        send(addr, good)  # captured and sent again to the restarted server
        await until(lambda: server.metrics.snapshot()["packets"].get("replay", 0) == len(good))

    assert run(bundle, first, keys={3: KEY}, config=config)[1]["packets"] == {"accepted": len(good)}
    assert (tmp_path / "replay.json").stat().st_mode & 0o777 == 0o600
    lines, summary = run(bundle, replayed, keys={3: KEY}, config=config)
    assert summary["packets"] == {"replay": len(good)} and not [r for r in lines if r["type"] == "final"]


def test_a_failing_stream_costs_no_other_stream_its_result(asr_case):
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    good, bad = (stream_packets(codes[i], sizes, book, device_id=5, stream_id=s, frames_per_packet=1000)
                 for i, s in ((0, 1), (1, 66)))  # one packet each, so they share a tail step

    async def scenario(server, addr, out):
        step = server.engine.step

        def failing(work):
            if (5, 66) in work:  # a stream that breaks the tail (a bug, an input it cannot take)
                raise RuntimeError("boom")
            return step(work)

        server.engine.step = failing
        server.config = ServeConfig(max_delay=0.5)  # both packets wait for one step
        send(addr, bad + good)
        await until(lambda: len(finals(out)) == 2)
        send(addr, bad)  # the failed stream is ended: its packets are refused
        await until(lambda: server.metrics.snapshot()["packets"].get("closed", 0) == 1)

    lines, summary = run(bundle, scenario)
    got = {r["stream"]: r for r in lines if r["type"] == "final"}
    assert got[1]["text"] == offline_text(bundle, codes[0]) and "error" not in got[1]
    assert got[66]["error"] == "tail step failed: RuntimeError('boom')" and got[66]["frames"] == 0
    assert summary["tail_errors"] == 1 and summary["streams_ended"] == {"end": 2}  # both had ended: no more to refuse
    assert summary["packets"] == {"accepted": 2, "closed": 1}


def test_a_stream_whose_tail_fails_midway_is_ended_with_an_error(asr_case):
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    packets = stream_packets(codes[0], sizes, book, device_id=5, stream_id=70, frames_per_packet=20)
    assert len(packets) >= 3

    async def scenario(server, addr, out):
        step = server.engine.step
        server.engine.step = lambda work: step(work) if not server.engine.streams else 1 / 0  # fails once it has state
        send(addr, packets[:1])
        await until(lambda: server.metrics.snapshot()["tail_batches"] >= 1)
        send(addr, packets[1:2])
        await until(lambda: len(finals(out)) == 1)
        send(addr, packets[2:])
        await until(lambda: server.metrics.snapshot()["packets"].get("closed", 0) == len(packets) - 2)

    lines, summary = run(bundle, scenario)
    (final,) = [r for r in lines if r["type"] == "final"]
    assert final["error"].startswith("tail step failed: ZeroDivisionError")
    assert summary["streams_ended"] == {"error": 1} and summary["tail_errors"] == 1


def test_serial_pty_socket_url_and_a_dead_port(asr_case):
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    master, slave = os.openpty()
    tty.setraw(slave)  # bytes must pass unchanged even before the server configures the port
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"socket://127.0.0.1:{listener.getsockname()[1]}"
    # short packets on every transport (full every 2nd packet): each line and socket is its own source
    over_pty, over_tcp, over_udp = (stream_packets(codes[d], sizes, book, device_id=d + 1, stream_id=0,
                                                   frames_per_packet=20, full_every=2) for d in range(3))
    assert all(any(p[0] & 0x80 for p in x) for x in (over_pty, over_tcp, over_udp))

    async def scenario(server, addr, out):
        conn = await asyncio.get_running_loop().run_in_executor(None, listener.accept)
        # pyserial's open flushes earlier input, the socket:// one too (after the TCP accept above): wait for both
        await until(lambda: all(r.opened.is_set() for r in server.serial_readers[:2]))
        os.write(master, b"\x01\x02noise\x00" + b"".join(frame_serial(p) for p in over_pty))
        conn[0].sendall(b"".join(frame_serial(p) for p in over_tcp) + b"junk-without-end")
        send(addr, over_udp)
        await until(lambda: len(finals(out)) == 3)
        conn[0].close()

    try:
        lines, summary = run(bundle, scenario, serial=[os.ttyname(slave), url, "/dev/acom-no-such-port"])
    finally:
        os.close(master)
        os.close(slave)
        listener.close()
    got = {r["device"]: r["text"] for r in lines if r["type"] == "final"}
    assert got == {d + 1: offline_text(bundle, codes[d][:2]) for d in range(3)}
    assert summary["packets"]["accepted"] == len(over_pty) + len(over_tcp) + len(over_udp)
    assert summary["packets"]["framing"] >= 1  # the noise before the first frame
    assert summary["packets"]["serial_error"] >= 1  # the missing port: counted, retried, UDP unaffected
    assert summary["received_bytes"]["serial"] > 0 and summary["received_bytes"]["udp"] > 0


def test_metrics_endpoint_and_shutdown_flushes_open_streams(ac_case):
    path, bundle, codes = ac_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    # no end-of-stream packets: the streams are open when the server stops
    plan = [p for i, c in enumerate(codes) for p in stream_packets(c, sizes, book, device_id=8, stream_id=i,
                                                                      frames_per_packet=5)[:-1]]
    text = {}

    async def scenario(server, addr, out):
        send(addr, plan)
        await until(lambda: server.metrics.snapshot()["packets"].get("accepted", 0) == len(plan))
        await until(lambda: server.metrics.snapshot()["results"])  # some results written
        await asyncio.sleep(1.2)  # the recent-latency gauges are refreshed once a second
        port = addr["metrics"][1]
        text["body"] = await asyncio.get_running_loop().run_in_executor(
            None, lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode())

    lines, summary = run(bundle, scenario, metrics=True)
    assert f'acom_packets_total{{outcome="accepted"}} {float(len(plan))}' in text["body"]
    assert "acom_latency_seconds_bucket" in text["body"]
    assert 'acom_latency_recent_seconds{quantile="0.99"}' in text["body"]
    final = [r for r in lines if r["type"] == "final"]
    assert len(final) == len(codes) and summary["streams_ended"] == {"shutdown": len(codes)}
    assert all(r["label"] in range(10) and abs(sum(r["scores"]) - 1) < 1e-3 for r in final)


def test_garbage_and_mutated_packets_leave_the_server_serving(asr_case):
    """Random bytes and corrupted copies of valid packets: each is counted as a rejection, never an exception,
    and a valid stream sent afterwards still gets the offline transcript."""
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    valid = stream_packets(codes[1], sizes, book, device_id=9, stream_id=4, frames_per_packet=10)
    rng = random.Random(11)
    junk = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 1500))) for _ in range(150)]
    for _ in range(300):
        b = bytearray(rng.choice(valid))
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        junk.append(bytes(b))

    async def scenario(server, addr, out):
        for k in range(0, len(junk), 25):  # paced: a burst beyond the socket buffer is dropped by the kernel
            send(addr, junk[k: k + 25])
            await asyncio.sleep(0.02)
        send(addr, valid)
        await until(lambda: len(finals(out)) == 1)

    lines, summary = run(bundle, scenario)
    assert [r["text"] for r in lines if r["type"] == "final"] == [offline_text(bundle, codes[1])]
    counts = summary["packets"]
    assert counts["accepted"] == len(valid) and summary["tail_errors"] == 0
    assert sum(counts.values()) == len(junk) + len(valid)  # every datagram counted exactly once


def test_a_failing_tail_step_is_counted_and_the_server_goes_on(asr_case):
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    first = stream_packets(codes[0], sizes, book, device_id=1, stream_id=0)
    second = stream_packets(codes[1], sizes, book, device_id=1, stream_id=1)

    async def scenario(server, addr, out):
        real, calls = server.engine.step, []

        def flaky(work):
            calls.append(len(work))
            if len(calls) == 1:
                raise RuntimeError("injected")
            return real(work)
        server.engine.step = flaky
        send(addr, first[:1])
        await until(lambda: calls)
        send(addr, second)
        await until(lambda: len(finals(out)) == 1)

    lines, summary = run(bundle, scenario)
    # the step failed once; stream 0 had no state before it, so it ran again alone and nothing was lost
    assert summary["tail_errors"] == 0 and summary["streams_ended"] == {"end": 1, "shutdown": 1}
    assert [r["text"] for r in lines if r["type"] == "final" and r["stream"] == 1] == [offline_text(bundle, codes[1])]
    assert [r for r in lines if r["type"] == "final" and r["stream"] == 0 and "error" in r] == []


def test_short_packets_from_each_source_use_its_own_full_packets(asr_case):
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    a, b = (stream_packets(codes[i], sizes, book, device_id=8, stream_id=i, frames_per_packet=5, key=KEY,
                           full_every=3) for i in range(2))
    assert [p[0] >> 7 for p in a[:4]] == [0, 1, 1, 0] and a[-1][:2] == b"AC"  # full, short, short, full

    async def scenario(server, addr, out):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s1, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s2:
            for p in a:
                s1.sendto(p, tuple(addr["udp"]))
            s2.sendto(a[1], tuple(addr["udp"]))  # a short packet from another source: never expandable there
            for p in b[1:]:  # stream b's first (full) packet is lost: its next two short ones wait for seq 3
                s2.sendto(p, tuple(addr["udp"]))
            await until(lambda: len(finals(out)) == 2)

    lines, summary = run(bundle, scenario, keys={8: KEY},
                         config=ServeConfig(reassembly=ReassemblyConfig(reorder_timeout=0.1)))
    got = {r["stream"]: r for r in lines if r["type"] == "final"}
    assert got[0]["text"] == offline_text(bundle, codes[0]) and got[0]["missing_frames"] == 0
    assert got[1]["frames"] == codes[1].shape[1] and got[1]["missing_frames"] == 5  # packet 0 only
    # the stray one waited for a context until shutdown, then was counted
    assert summary["packets"] == {"accepted": len(a) + len(b) - 1, "context": 1}


def test_admission_control_refuses_new_streams_while_the_tail_lags(asr_case):
    """A slow tail (each step held 0.5 s) pushes the measured lag over the limit: a new stream's packets are
    refused and counted (overload) while the open stream is still served; once steps are fast again the lag
    falls below half the limit and new streams are admitted."""
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    first = stream_packets(codes[0], sizes, book, device_id=1, stream_id=1, frames_per_packet=5)
    refused = stream_packets(codes[1], sizes, book, device_id=1, stream_id=2)
    later = stream_packets(codes[2], sizes, book, device_id=1, stream_id=3)
    assert len(first) >= 8

    async def scenario(server, addr, out):
        step = server.engine.step

        def slow(work):
            time.sleep(0.5)
            return step(work)
        server.engine.step = slow
        for p in first[:2]:  # two slow steps
            send(addr, [p])
            await asyncio.sleep(0.6)
        await until(lambda: server.admission.overloaded)
        send(addr, refused)
        await until(lambda: server.metrics.packets.labels("overload")._value.get() == len(refused))
        server.engine.step = step
        for p in first[2:]:  # the open stream is served on; its fast steps bring the lag down
            send(addr, [p])
            await asyncio.sleep(0.05)
        await until(lambda: not server.admission.overloaded)
        send(addr, later)
        await until(lambda: {(1, 1), (1, 3)} <= set(finals(out)))

    lines, summary = run(bundle, scenario, config=ServeConfig(admit_lag_ms=150.0))
    assert set(finals(io.StringIO("\n".join(json.dumps(x) for x in lines) + "\n"))) == {(1, 1), (1, 3)}
    assert summary["packets"]["overload"] == len(refused)
    assert summary["packets"]["accepted"] == len(first) + len(later)


def test_admission_by_the_measured_number_of_slots(asr_case):
    """--admit-streams N: with N slots held, a packet that would open another stream is refused (overload) and
    that stream stays refused to its end. A stream's slot is held one packet's duration after its end, and its
    device's next stream takes it over: another device gets it only once that time has passed."""
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes

    def utterance(device, stream, i):
        return stream_packets(codes[i], sizes, book, device_id=device, stream_id=stream)
    a1, a2 = utterance(1, 1, 0), utterance(1, 2, 1)  # device 1, back to back
    b1, b2, b3 = utterance(2, 1, 2), utterance(2, 2, 0), utterance(2, 3, 1)  # device 2
    packet_s = 25 / bundle.frame_rate  # stream_packets' packets: 25 frames
    assert len(a1) >= 2

    async def scenario(server, addr, out):
        send(addr, a1[:1])
        await until(lambda: len(server.streams.streams) == 1)
        send(addr, b1)  # refused, all of it, end packet included
        send(addr, a1[1:])
        await until(lambda: (1, 1) in finals(out))
        send(addr, b2)  # device 1's slot is still held: refused
        send(addr, a2)  # device 1's next stream takes its slot over at once
        await until(lambda: (1, 2) in finals(out))
        await asyncio.sleep(packet_s + 0.2)  # the slot is released
        send(addr, b3)
        await until(lambda: (2, 3) in finals(out))

    lines, summary = run(bundle, scenario, config=ServeConfig(admit_streams=1))
    assert summary["packets"]["overload"] == len(b1) + len(b2)
    assert summary["packets"]["accepted"] == len(a1) + len(a2) + len(b3)
    assert summary["stream_slots_max"] == 1  # what bench/serve_overload.py admits by


def test_a_burst_runs_in_steps_within_the_frame_budget(asr_case):
    """A burst of whole utterances at once: each tail step runs at most max_step_frames frames (its first chunk
    always), a stream over the budget finishes in later steps, and every transcript is the offline one."""
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    streams = [stream_packets(c, sizes, book, device_id=2, stream_id=i, frames_per_packet=50)
               for i, c in enumerate(codes)]
    steps = []

    async def scenario(server, addr, out):
        step = server.engine.step
        server.engine.step = lambda work: (steps.append(sum(server.engine.kept(c) for w in work.values()
                                                             for c in w.chunks)), step(work))[1]
        send(addr, [p for s in streams for p in s])
        await until(lambda: len(finals(out)) == len(codes))

    config = ServeConfig(max_step_frames=1, max_packet_s=2.0)  # a step: its first chunk (a packet's 50, a gap's 225)
    lines, summary = run(bundle, scenario, config=config)
    assert max(steps) <= 225 < sum(c.shape[1] for c in codes) and len(steps) > 2
    got = {r["stream"]: r["text"] for r in lines if r["type"] == "final"}
    assert [got[i] for i in range(len(codes))] == [offline_text(bundle, c) for c in codes]


def test_a_stream_sending_faster_than_the_tail_loses_its_own_frames_only(asr_case):
    """While the tail is busy, a stream whose waiting audio passes --max-backlog-s has its next packets refused
    (backlog); another stream is served in full."""
    import threading
    path, bundle, codes = asr_case
    book, sizes = codebook_id(bundle.manifest.codebook_hash), bundle.codebook_sizes
    fast = stream_packets(codes[0], sizes, book, device_id=3, stream_id=1, frames_per_packet=10)
    calm = stream_packets(codes[1], sizes, book, device_id=3, stream_id=2, frames_per_packet=250)
    held, go = threading.Event(), threading.Event()

    async def scenario(server, addr, out):
        step = server.engine.step
        server.engine.step = lambda work: (held.set(), go.wait(30), step(work))[2]
        send(addr, fast[:1])
        await until(held.is_set)  # the tail is busy with the first packet: the rest wait
        send(addr, fast[1:] + calm)
        await until(lambda: server.metrics.packets.labels("accepted")._value.get() == 4 + len(calm))
        go.set()
        await until(lambda: len(finals(out)) == 2)

    config = ServeConfig(max_backlog_s=1.0, reassembly=ReassemblyConfig(idle_timeout=1.0))  # 25 frames waiting
    lines, summary = run(bundle, scenario, config=config)
    got = {r["stream"]: r for r in lines if r["type"] == "final"}
    assert got[2]["text"] == offline_text(bundle, codes[1]) and got[2]["missing_frames"] == 0
    assert summary["packets"]["backlog"] == len(fast) - 4  # 1 in the tail, 3 waiting (30 frames > 25)
    assert summary["packets"]["accepted"] == 4 + len(calm)
    assert got[1]["frames"] == 40  # its first four packets; the refused rest never reached the tail
