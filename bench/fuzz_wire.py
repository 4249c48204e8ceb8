"""Benchmark: a mutation fuzzer over the wire format: any bytes give a Packet or a WireError.

Inputs: random bytes, and valid packets (v3 full and short, v2 full and compact; tagged and untagged) with random
bit flips, byte changes, insertions, truncations and splices; each goes through decode_packet (with and without
keys, with stream contexts that know the seeds' stream, so short and compact packets are expanded and checked)
and, COBS-framed and cut at random, through SerialDeframer. Any other exception is a finding: it is
recorded with its input (hex) and the run fails. Not coverage-guided (atheris is not used); seeded, so a
finding reproduces. Writes reports/fuzz_wire.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from acom.errors import WireError
from acom.runtime.sender import stream_packets
from acom.runtime.wire import Contexts, Packet, SerialDeframer, decode_packet, frame_serial, pack_codes
from acom.runtime.wire_v2 import encode_v2

KEYS = {7: b"fuzz-key"}


def seeds(rng: np.random.Generator) -> list[bytes]:
    """Valid packets of stream 1 of device 7: v3 streams (full, short, ...) untagged and with 4- and 16-byte tags,
    and v2 full and compact packets."""
    out = []
    for sizes, n_q, frames in (([64], 1, 25), ([64, 64, 64], 3, 25), ([1000, 7], 2, 9), ([2], 1, 1)):
        codes = np.stack([rng.integers(0, k, 3 * frames) for k in sizes[:n_q]])
        for key, tag in ((None, 8), (KEYS[7], 4), (KEYS[7], 16)):
            out += stream_packets(codes, sizes, 0x1122334455667788, device_id=7, stream_id=1, frames_per_packet=frames,
                                  key=key, tag_len=tag, first_seq=5, full_every=2)
        p = Packet(7, 1, 5, 125, 0x1122334455667788, n_q, frames, pack_codes(codes[:, :frames], sizes), version=2)
        out += [encode_v2(p, key, compact) for key in (None, KEYS[7]) for compact in (False, True)]
    return out


def mutate(rng: np.random.Generator, data: bytes, pool: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        op = int(rng.integers(0, 6))
        if op == 0 and b:
            i = int(rng.integers(0, len(b)))
            b[i] ^= 1 << int(rng.integers(0, 8))
        elif op == 1 and b:
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        elif op == 2:
            b[int(rng.integers(0, len(b) + 1)):0] = rng.bytes(int(rng.integers(1, 8)))
        elif op == 3 and b:
            del b[int(rng.integers(0, len(b))):]
        elif op == 4:
            other = pool[int(rng.integers(0, len(pool)))]
            b = b[: int(rng.integers(0, len(b) + 1))] + bytearray(other[int(rng.integers(0, len(other))):])
        else:
            b = bytearray(rng.bytes(int(rng.integers(0, 80))))
    return bytes(b)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--inputs", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("reports/fuzz_wire.json"))
    ns = p.parse_args()
    rng = np.random.default_rng(ns.seed)
    pool = seeds(rng)
    counts: dict[str, int] = {}
    findings = []
    deframer = SerialDeframer(KEYS)
    contexts = {None: Contexts(), "keys": Contexts()}
    for key, c in contexts.items():  # the full packets of stream 1 set its contexts (v3 and v2)
        for d in pool:
            try:
                decode_packet(d, KEYS if key else None, c)
            except WireError:
                pass
    t0 = time.perf_counter()
    for n in range(ns.inputs):
        data = mutate(rng, pool[n % len(pool)], pool)
        for keys in (None, KEYS):
            try:
                decode_packet(data, keys, contexts["keys" if keys else None])
                counts["packet"] = counts.get("packet", 0) + 1
            except WireError as e:
                counts[e.reason] = counts.get(e.reason, 0) + 1
            except Exception as e:  # noqa: BLE001 - any other exception is what the fuzzer looks for
                findings.append({"input": data.hex(), "error": repr(e)})
        try:
            frame = frame_serial(data) if n % 2 else data
            cut = int(rng.integers(0, len(frame) + 1))
            for r in deframer.feed(frame[:cut]) + deframer.feed(frame[cut:]):
                assert isinstance(r, (Packet, WireError))
        except Exception as e:  # noqa: BLE001
            findings.append({"input": data.hex(), "error": repr(e), "where": "serial"})
    seconds = time.perf_counter() - t0
    report = {"inputs": ns.inputs, "seed": ns.seed, "seconds": round(seconds, 1),
              "inputs_per_s": round(ns.inputs / seconds), "outcomes": dict(sorted(counts.items())),
              "findings": findings[:20], "passed": not findings}
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    ns.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "findings"}))
    raise SystemExit(0 if not findings else 1)


if __name__ == "__main__":
    main()
