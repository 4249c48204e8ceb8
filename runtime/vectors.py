"""Wire-format test vectors: audio -> codes -> packet bytes, for the C implementation on the device to
reproduce byte for byte. ``python -m acom.runtime.vectors runtime/wire_vectors`` (re)writes them (``wire_v3.json``);
a test checks that the shipped classifier and this module still produce exactly what is stored. ``wire_v2.json``
holds version 2's vectors, which servers still read.

The cases are sent bit-packed, and (``entropy_coded``) range-coded under the classifier's code priors, which the
file carries as counts (``priors``: the fields of ``bitrate.CodePriors.to_tensors``); docs/wire.md gives the
probabilities they define and the coder.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

from acom.runtime.sender import stream_packets
from acom.runtime.wire import VERSION, codebook_id, frame_serial, make_payload

# the shipped vectors (package data), read by the C checks (acom.firmware_host.wire_c) and the tests
VECTORS_DIR = Path(__file__).resolve().parent / "wire_vectors"
KEY = b"acom-test-key-0001"  # the HMAC key of device 7 in the vectors (a test key, not a secret)
SAMPLE_RATE = 16000


def vector_audio(seconds: float = 1.0) -> np.ndarray:
    """A fixed test signal (float32 [N]): a 300 -> 3000 Hz chirp with bursts, exact to the sample in float64."""
    t = np.arange(int(seconds * SAMPLE_RATE), dtype=np.float64) / SAMPLE_RATE
    chirp = np.sin(2 * np.pi * (300 * t + 0.5 * 2700 * t * t / seconds))
    bursts = (np.sin(2 * np.pi * 3 * t) > 0.6) * np.sin(2 * np.pi * 1250 * t)
    return (0.3 * chirp + 0.2 * bursts).astype(np.float32)


def make_vectors(codes: np.ndarray, codebook_sizes: list[int], codebook_hash: str, priors=None) -> list[dict]:
    """The cases: codes [n_q, T] sent with 1 and all stages, untagged and with 4-, 8- and 16-byte tags, as one
    stream of one frame per packet (full, short, short, full, ...; the last full with end of stream), and their
    serial frames; then, with ``priors`` (a CodePriors), the same range-coded (stream 2). Each case names the
    stream it was sent as (``sender.stream_packets``' arguments), so that another implementation can send it."""
    cases = []
    for coded in [False] + ([True] if priors is not None else []):
        for n_q in sorted({1, codes.shape[0]}):
            for key, tag_len in ((None, 0), (KEY, 4), (KEY, 8), (KEY, 16)):
                stream = {"device_id": 7, "stream_id": 1 + coded, "first_seq": 253 + n_q,  # seq's low byte wraps
                          "frames_per_packet": 1, "full_every": 3, "tag_len": tag_len}
                packets = stream_packets(codes[:n_q], codebook_sizes, codebook_id(codebook_hash), key=key,
                                         priors=priors if coded else None, **stream)
                pieces = [codes[:n_q, s: s + 1] for s in range(codes.shape[1])]
                cases.append({"n_q": n_q, "hmac_key": key.decode() if key else None, **stream,
                              **({"entropy_coded": True} if coded else {}),
                              "payloads": [make_payload(c, codebook_sizes, priors if coded else None)[0].hex()
                                           for c in pieces],
                              "packets": [d.hex() for d in packets],
                              "serial": [frame_serial(d).hex() for d in packets]})
    return cases


def priors_to_json(priors) -> dict:
    """A CodePriors as JSON: alpha and per stage the counts (``CodePriors.to_tensors``' fields)."""
    return {"alpha": priors.alpha, "stages": [{"codebook_size": s.codebook_size, "unigram": s.unigram.tolist(),
                                               "bigram_prev": s.bigram_prev.tolist(),
                                               "bigram_cur": s.bigram_cur.tolist(),
                                               "bigram_count": s.bigram_count.tolist()} for s in priors.stages]}


def priors_from_json(d: dict):
    """Inverse of ``priors_to_json``."""
    from acom.codes.priors import CodePriors, StageCounts
    return CodePriors(stages=tuple(StageCounts(**{k: (np.asarray(v) if isinstance(v, list) else v)
                                                  for k, v in s.items()})
                                   for s in d["stages"]), alpha=float(d["alpha"]))


def shipped_classifier_vectors() -> dict:
    """Vectors from the shipped classifier's float edge half on ``vector_audio()``."""
    import torch

    from acom.codes.priors import CodePriors
    from acom.core.checkpoint import PRETRAINED, load_checkpoint

    split, payload = load_checkpoint(PRETRAINED / "ac" / "split.pt", "ac")
    with torch.no_grad():
        codes = split.edge()(torch.from_numpy(vector_audio())[None])[0].numpy()
    sizes = list(split.rvq.config.codebook_sizes)
    priors = CodePriors.from_tensors(payload["priors"])
    return {"wire_version": VERSION, "model": "core/pretrained/ac/split.pt", "codebook_hash": split.rvq.codebook_hash(),
            "codebook_sizes": sizes, "audio": "vector_audio(): 1 s, see acom/runtime/vectors.py (also clip.raw: "
            "float32 little-endian)", "codes": codes.tolist(), "priors": priors_to_json(priors),
            "cases": make_vectors(codes, sizes, split.rvq.codebook_hash(), priors)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else VECTORS_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / "clip.raw").write_bytes(vector_audio().astype("<f4").tobytes())
    name = out / f"wire_v{VERSION}.json"
    text = json.dumps(shipped_classifier_vectors(), indent=1)
    # lists of numbers on one line each (the priors' counts would take thousands of lines)
    text = re.sub(r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]",
                  lambda m: "[" + re.sub(r"\s+", "", m.group(1)) + "]", text)
    name.write_text(text + "\n")
    print(f"wrote {name} and {out / 'clip.raw'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
