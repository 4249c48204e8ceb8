"""Coverage-guided fuzzing (atheris, on libFuzzer) of what the server does with bytes from the network.

Four entry points, chosen by the input's first byte: the packet decoder (v3 and v2, with and without keys,
with contexts that know a stream), the payload decoders (bit-packed and range-coded), the reassembler (a
burst of packets from three sources as the server takes them: per-source contexts, held short packets,
``Reassembler``) and the serial deframer (bytes cut at random). The CRC or tag of a
packet-shaped input is recomputed before decoding (``reseal``) so that the fuzzer explores what lies behind
the checks, not only the checks. Any exception other than ``WireError`` is a finding (libFuzzer writes the
input to ``crash-*``). The corpus lives in ``bench/fuzz_corpus/`` (seeded from the wire vectors); runs add
to it only with ``--grow``.

    python bench/fuzz_cov.py --runs 10000000 --report reports/fuzz_cov.json  # the long run, then coverage
    python bench/fuzz_cov.py --runs 20000                                    # a short run (make test runs it)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import atheris
import numpy as np

with atheris.instrument_imports(include=["acom.runtime.wire", "acom.runtime.wire_v2", "acom.runtime.packet",
                                         "acom.runtime.streams", "acom.runtime.sources", "acom.codes.priors"]):
    from google_crc32c import value as crc32c

    from acom.codes.priors import CodePriors
    from acom.errors import WireError
    from acom.runtime import wire
    from acom.runtime.packet import hmac_tag
    from acom.runtime.sender import stream_packets
    from acom.runtime.sources import SourceContexts
    from acom.runtime.streams import Reassembler, ReassemblyConfig
    from acom.runtime.wire import (
        Contexts,
        SerialDeframer,
        StreamContext,
        decode_packet,
        encode_packet,
        encode_short,
        packet_codes,
    )
    from acom.runtime.wire_v2 import encode_v2

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "bench" / "fuzz_corpus"
KEY = b"fuzz-key-0123456789"
KEYS = {7: KEY}
SIZES = [64, 1000, 2]
_rng = np.random.default_rng(0)
PRIORS = CodePriors.estimate([np.stack([_rng.integers(0, 8, 300), _rng.integers(0, 1000, 300),
                                        _rng.integers(0, 2, 300)])], SIZES)


def seeds() -> list[bytes]:
    """Valid inputs of every entry point: streams of device 7 (untagged, 4- and 16-byte tags, range-coded)."""
    codes = np.stack([_rng.integers(0, 64, 40), _rng.integers(0, 1000, 40), _rng.integers(0, 2, 40)])
    out = []
    for key, tag, priors in ((None, 8, None), (KEY, 4, None), (KEY, 16, PRIORS), (None, 8, PRIORS)):
        packets = stream_packets(codes, SIZES, 0xABC, device_id=7, stream_id=2, frames_per_packet=10, key=key,
                                 tag_len=tag, priors=priors, first_seq=254, full_every=3)
        out += [bytes([0]) + p for p in packets] + [bytes([1]) + p for p in packets]
        out.append(bytes([2]) + b"".join(struct.pack("<H", len(p)) + p for p in packets))
        out.append(bytes([3]) + b"".join(wire.frame_serial(p) for p in packets))
    for key in (None, KEY):  # version 2, which servers still read: a full and a compact packet
        p = wire.Packet(7, 2, 5, 50, 0xABC, 1, 10, wire.pack_codes(codes[:1, :10], SIZES), version=2)
        out += [bytes([k]) + encode_v2(p, key, compact) for k in (0, 1) for compact in (False, True)]
    out += [bytes([4]) + _rng.bytes(40) for _ in range(4)]
    out.append(bytes([3]) + b"\x01" * 1500 + b"\x00" + wire.frame_serial(packets[0]))  # an overlong serial frame
    p = wire.Packet(7, 2, 9, 90, 0xABC, 4, 10, _rng.bytes(20), True, frames_per_packet=10, stream_n_q=4)
    out.append(bytes([0]) + encode_packet(p))  # range-coded with more stages than the priors hold
    # a burst from source 1 whose short packets overtake their full packet (held, then released)
    packets = stream_packets(codes, SIZES, 0xABC, device_id=7, stream_id=3, frames_per_packet=10, full_every=3)
    out.append(bytes([2]) + b"".join(struct.pack("<H", 1 << 14 | len(p)) + p for p in packets[1:] + packets[:1]))
    return out


def reseal(data: bytes, contexts: Contexts) -> bytes:
    """``data`` with the CRC or tag a sender would have written for its fields (v3 full and short)."""
    try:
        if len(data) >= wire.HEADER_SIZE + 4 and data[:2] == wire.MAGIC and data[2] == wire.VERSION:
            tag = wire.TAG_SIZES[data[3] >> wire.TAG_SHIFT & 3]
            body = data[: len(data) - (tag or wire.CRC_SIZE)]
            f = wire.HEADER.unpack_from(body)
            p = wire.Packet(f[3], f[4], f[5], f[6], f[7], f[8], f[9], body[wire.HEADER_SIZE:],
                            frames_per_packet=f[10], stream_n_q=f[11])
            signed = wire._signed(p, data[3])
            return body + (hmac_tag(KEY, signed, tag) if tag else struct.pack("<I", crc32c(signed)))
        c = contexts._by.get((wire.VERSION, data[0] % wire.CONTEXTS)) if data and data[0] & wire.SHORT else None
        if isinstance(c, StreamContext):
            return _reseal_short(data, c)
    except (struct.error, ValueError, IndexError, WireError):
        pass
    return data


def _reseal_short(data: bytes, c: StreamContext) -> bytes:
    pos, n_q, n_frames = wire.SHORT_HEADER, c.n_q, c.frames_per_packet
    if data[0] & wire.SHORT_NQ:
        n_q, pos = data[pos], pos + 1
    if data[0] & wire.SHORT_NFRAMES:
        n_frames, pos = int.from_bytes(data[pos: pos + 2], "little"), pos + 2
    body = data[: len(data) - (c.tag_len or wire.CHECK_SIZE)]
    seq = wire._extend8(c.high_seq, data[1])
    p = wire.Packet(c.device_id, c.stream_id, seq, c.implied_first_frame(seq), c.codebook_id, n_q, n_frames,
                    body[pos:], c.entropy_coded, bool(data[0] & wire.SHORT_END), frames_per_packet=c.frames_per_packet,
                    stream_n_q=c.n_q)
    signed = wire._signed(p, wire._flags(p, c.tag_len, short=True))
    return body + (hmac_tag(KEY, signed, c.tag_len) if c.tag_len else struct.pack("<H", wire.crc_hqx(signed, 0xFFFF)))


_SEEDS = seeds()
_FULL = [d[1:] for d in _SEEDS if d[0] == 0 and d[1:3] == wire.MAGIC]  # full packets of the seeds' streams


def _known_contexts(keys) -> Contexts:
    """Contexts that know the seeds' stream 2 of device 7 (its first full packet, untagged or tagged)."""
    contexts = Contexts()
    for d in _FULL:
        try:
            decode_packet(d, keys, contexts)
        except WireError:  # untagged with keys, tagged without
            pass
    return contexts


def one_input(data: bytes) -> None:
    """The fuzz target: anything but a WireError escaping is a finding."""
    if not data:
        return
    kind, body = data[0] % 5, data[1:]
    try:
        if kind in (0, 1):
            keys = KEYS if kind == 1 else None
            contexts = _known_contexts(keys)
            p = decode_packet(reseal(body, contexts), keys, contexts)
            packet_codes(p, SIZES, PRIORS)
        elif kind == 2:
            _server_path(body)
        elif kind == 4:
            fdp = atheris.FuzzedDataProvider(body)
            (_encode_round_trip if fdp.ConsumeBool() else _codes_round_trip)(fdp)
        else:
            deframer = SerialDeframer(KEYS)
            for i in range(0, len(body), 97):
                for r in deframer.feed(body[i: i + 97]):
                    assert isinstance(r, (wire.Packet, WireError))
    except WireError:
        pass


def _server_path(body: bytes) -> None:
    """A burst of packets from three sources as the server takes them: per-source contexts (kept only for
    packets that pass), short packets held while their context is missing and released by their full packet,
    then reassembly. Each packet is a 2-byte header (source in the top 2 bits, length below) and its bytes."""
    sources, streams = SourceContexts(max_sources=2, max_held=8, max_held_per_source=4), \
        Reassembler(ReassemblyConfig(window=4, max_gap_frames=200))
    pos, now = 0, 0.0

    def take(raw: bytes, source: int, retried: bool) -> None:
        try:
            p = sources.decode(source, raw, None)
        except WireError as e:
            if e.reason == "context" and not retried:
                sources.hold(source, raw, now)
            return
        try:
            streams.accept(p, packet_codes(p, SIZES, PRIORS), now)
        except WireError:
            pass
        if not p.compact:
            for held in sources.release(source, p.context):
                take(held, source, True)

    while pos + 2 <= len(body):
        head = struct.unpack_from("<H", body, pos)[0]
        source, n = head >> 14, head % 1500
        raw, pos, now = reseal(body[pos + 2: pos + 2 + n], sources.get(source)), pos + 2 + n, now + 0.05
        take(raw, source, False)
        sources.expire(now, 0.5)
        streams.tick(now)
    streams.close_all(now)


def _encode_round_trip(fdp) -> None:
    """A packet from fuzzed fields, full or short (against the context its stream's full packet sets): the
    encoder refuses it with a WireError, or the decoder gives back exactly what was encoded."""
    ints = [fdp.ConsumeIntInRange(0, (1 << b) - 1) for b in (32, 16, 32, 32, 64, 8, 13, 13, 8)]
    device, stream, seq, first, book, n_q, n_frames, fpp, stream_n_q = ints
    keyed = fdp.ConsumeBool()
    tag = (*wire.TAG_SIZES, 3, 32)[fdp.ConsumeIntInRange(0, 5)] if keyed else 0  # 0, 3, 32: refused with a key
    keys, key = ({device: KEY}, KEY) if keyed else (None, None)
    p = wire.Packet(device, stream, seq, first, book, n_q, n_frames, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 1500)),
                    fdp.ConsumeBool(), fdp.ConsumeBool(), keyed, frames_per_packet=fpp, tag_len=tag,
                    stream_n_q=stream_n_q)
    contexts = Contexts()
    if fdp.ConsumeBool():
        data = encode_packet(p, key, tag)
    else:  # short: the stream's full packet first, then this packet as the next one of its stream
        full = wire.Packet(device, stream, seq, first, book, stream_n_q or 1, fpp, b"", p.entropy_coded,
                           frames_per_packet=fpp, tag_len=tag, stream_n_q=stream_n_q or 1)
        decode_packet(encode_packet(full, key, tag), keys, contexts)
        nxt = seq + 1 + fdp.ConsumeIntInRange(0, 250)
        p = wire.Packet(device, stream, nxt, first + (nxt - seq) * fpp, book, n_q, n_frames, p.payload,
                        p.entropy_coded, p.end_of_stream, keyed, True, fpp, tag, stream_n_q=stream_n_q or 1)
        off = fdp.ConsumeIntInRange(0, 3)  # 1..3: a packet that does not follow the context, or the other keying
        if off == 1:
            p = dataclasses.replace(p, first_frame=p.first_frame + 1)
        elif off == 2:
            p = dataclasses.replace(p, stream_id=p.stream_id ^ 1)
        data = encode_short(p, StreamContext.of(full), (KEY if key is None else None) if off == 3 else key)
    got = decode_packet(data, keys, contexts)
    assert got == p, (got, p)


def _codes_round_trip(fdp) -> None:
    """Fuzzed codes and codebook sizes through the bit packer: refused with a WireError or given back exactly."""
    sizes = [fdp.ConsumeIntInRange(1, 70000) for _ in range(fdp.ConsumeIntInRange(1, 4))]
    n_q, frames = fdp.ConsumeIntInRange(0, 5), fdp.ConsumeIntInRange(0, 30)
    codes = np.array([[fdp.ConsumeIntInRange(-1, 70000) for _ in range(frames)] for _ in range(n_q)]).reshape(n_q,
                                                                                                              frames)
    payload = wire.pack_codes(codes, sizes)
    np.testing.assert_array_equal(wire.unpack_codes(payload, sizes, n_q, frames), codes)


def replay(extra: list[Path]) -> int:
    """Run every corpus input once, then those in ``extra`` folders (what ``--coverage`` measures)."""
    for folder in (CORPUS, *extra):
        for f in sorted(folder.iterdir()):
            one_input(f.read_bytes())
    return 0


def coverage_report(out: Path, extra: list[Path] = ()) -> int:
    """Replay the corpus (and the inputs a run found, in ``extra``) under coverage.py, in a child process so
    that module-level lines count as run, and write the line and branch coverage of the wire modules to ``out``."""
    include = ",".join(str(ROOT / "runtime" / n) for n in ("wire.py", "wire_v2.py", "packet.py"))
    with tempfile.TemporaryDirectory() as tmp:
        data, js = Path(tmp) / "cov.data", Path(tmp) / "cov.json"
        subprocess.run([sys.executable, "-m", "coverage", "run", "--branch", f"--include={include}",
                        f"--data-file={data}", __file__, "--replay", *map(str, extra)], check=True)
        subprocess.run([sys.executable, "-m", "coverage", "json", f"--data-file={data}", "-o", str(js), "-q"],
                       check=True)
        raw = json.loads(js.read_text())
    report = {Path(name).name: {"coverage_percent": round(f["summary"]["percent_covered"], 2),
                                "statements": f["summary"]["num_statements"],
                                "statements_missed": f["summary"]["missing_lines"],
                                "branches": f["summary"]["num_branches"],
                                "branches_missed": f["summary"]["missing_branches"],
                                "lines_missed": f["missing_lines"]}
              for name, f in raw["files"].items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"corpus_inputs": len(list(CORPUS.iterdir())),
                               "run_inputs": sum(len(list(f.iterdir())) for f in extra), "files": report},
                              indent=1) + "\n")
    print(json.dumps({k: {m: v[m] for m in ("coverage_percent", "branches", "branches_missed")}
                      for k, v in report.items()}))
    return 0


HARNESS = "four entry points, the server path with per-source contexts and held packets"


def long_run(runs: int, seed: int, out: Path) -> int:
    """Fuzz ``runs`` inputs in a child process, then measure the corpus's coverage; both into ``out``. The
    report's earlier runs are kept in its ``earlier_runs`` (inputs, seed, findings, harness), so runs add up."""
    import re
    previous = json.loads(out.read_text()) if out.exists() else {}
    earlier = previous.get("earlier_runs", [])
    if "fuzzing" in previous:
        f = previous["fuzzing"]
        earlier.append({"runs_executed": f["libfuzzer_stats"].get("number_of_executed_units", f["runs"]),
                        "seed": f["seed"], "findings": f["findings"], "harness": f.get("harness", HARNESS),
                        "peak_rss_mb": f["libfuzzer_stats"].get("peak_rss_mb")})
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="acom-fuzz-") as found:  # the inputs this run adds (not kept)
        r = subprocess.run([sys.executable, __file__, "--runs", str(runs), "--seed", str(seed), "--into", found],
                           capture_output=True, text=True)
        seconds = time.monotonic() - start
        stats = dict(re.findall(r"stat::(\w+):\s+(\d+)", r.stderr))
        coverage_report(out, [Path(found)])
    report = json.loads(out.read_text())
    report["earlier_runs"] = earlier
    report["fuzzing"] = {"runs": runs, "seed": seed, "seconds": round(seconds), "exit_status": r.returncode,
                         "harness": HARNESS,
                         "findings": r.returncode != 0, "libfuzzer_stats": {k: int(v) for k, v in stats.items()},
                         "entry_points": ["decode_packet (v3, v2; keys or not; contexts)", "payload decoders",
                                          "server path (per-source contexts, held packets, Reassembler)",
                                          "SerialDeframer", "encoder round trips"]}
    if r.returncode:
        report["fuzzing"]["stderr_tail"] = r.stderr[-3000:]
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["fuzzing"]))
    return r.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100_000, help="inputs to try (libFuzzer -runs)")
    ap.add_argument("--grow", action="store_true", help="add inputs that reach new code to bench/fuzz_corpus/")
    ap.add_argument("--coverage", type=Path, help="replay the corpus and write branch coverage here instead")
    ap.add_argument("--report", type=Path, help="run the fuzzer, then the coverage replay, and write both here")
    ap.add_argument("--replay", nargs="*", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--into", type=Path, help=argparse.SUPPRESS)  # where a run writes the inputs it adds
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.replay is not None:
        return replay(args.replay)
    if args.coverage:
        return coverage_report(args.coverage)
    if args.report:
        return long_run(args.runs, args.seed, args.report)
    CORPUS.mkdir(exist_ok=True)
    for i, s in enumerate(_SEEDS):  # the seeds are the corpus's first inputs (new seeds join it)
        if not (CORPUS / f"seed-{i:03d}").exists():
            (CORPUS / f"seed-{i:03d}").write_bytes(s)
    if not args.grow and args.into is None:
        # libFuzzer ends the process without running atexit handlers: a child fuzzes into a temporary folder
        # that this process removes on any exit
        with tempfile.TemporaryDirectory(prefix="acom-fuzz-") as found:
            return subprocess.run([sys.executable, __file__, "--runs", str(args.runs), "--seed", str(args.seed),
                                   "--into", found]).returncode
    # libFuzzer writes the inputs that reach new code into its first folder: the corpus itself with --grow
    first = CORPUS if args.grow else args.into
    atheris.Setup([sys.argv[0], str(first), *([] if args.grow else [str(CORPUS)]), f"-runs={args.runs}",
                   f"-seed={args.seed}", "-max_len=4096", "-print_final_stats=1"], one_input)
    atheris.Fuzz()  # exits the process when the runs are done (0), or on a finding (non-zero, crash-* written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
