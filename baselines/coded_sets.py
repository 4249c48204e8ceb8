"""Codec-pipeline data: a subset's audio through a codec (or a codec family) and back, as log-mel features.

The sets a baseline is scored on: `test-clean` (ASR) / `test` (sound classes), and `test-noisy` split by SNR.
The speech set ships its test-noisy copy (SNR per utterance in noise.csv); the sound-class set has none, so
its test-noisy is made here the same way: each test clip mixed with a held-out OpenSFX recording (the test
pool: never used in training) at 0, 5, 10 or 20 dB in turn.

Decoded features are cached (safetensors + a JSON sidecar with the payload bits, seconds, padded clips,
encoder CPU time and per-item SNRs) under DATA/features/codecs, keyed by the subset's files and the codec.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from acom.baselines import codecs as C
from acom.core.features import FrontEndConfig, LogMel
from acom.core.tasks import TASKS
from acom.corpora.featcache import FeatureSet, default_cache, open_dataset, subsets_for
from acom.errors import DataError

SNRS_DB = (0.0, 5.0, 10.0, 20.0)
FORMAT_VERSION = 2  # bump when decoding or mixing changes, so caches are remade


@dataclass
class CodedSet:
    """Features of a subset after a codec (or as recorded when codec is None), with what it cost."""

    features: FeatureSet
    snr_db: list[float | None]  # per item: the SNR of its noise, None when clean
    payload_bits: int
    seconds: float  # audio seconds the bits carried
    padded: int  # clips shorter than one codec frame, padded to one
    encode_cpu_s: float  # encoder CPU seconds, all items

    @property
    def measured_bps(self) -> float:
        return self.payload_bits / self.seconds if self.seconds else 0.0

    def by_snr(self) -> dict[float | None, list[int]]:
        """Item indices grouped by SNR (None = clean)."""
        groups: dict[float | None, list[int]] = {}
        for i, s in enumerate(self.snr_db):
            groups.setdefault(s, []).append(i)
        return dict(sorted(groups.items(), key=lambda kv: -1 if kv[0] is None else kv[0]))


def _mixed_here(task: str, split: str) -> bool:
    """A task without a recorded noisy test set gets one here: its clean test set mixed with noise."""
    return split == "test-noisy" and split not in subsets_for(task)


def family_codec(family: str, index: int) -> C.Codec:
    """The codec of item `index` when a set is coded with a whole family (fine-tuning): modes in turn."""
    members = [c for c in C.CODECS if c.family == family]
    if not members:
        raise DataError(f"unknown codec family {family!r}; known: {', '.join(C.FAMILIES)}")
    return members[index % len(members)]


def _codec_for(spec: str | None, index: int) -> C.Codec | None:
    if spec is None:
        return None
    if spec.startswith("family:"):
        return family_codec(spec.split(":", 1)[1], index)
    return C.get_codec(spec)


@functools.lru_cache(maxsize=8)
def subset_dataset(task: str, root: str, split: str):
    """The loader of `split` (test-noisy of the sound classes: the clean test fold, mixed on reading)."""
    base = TASKS[task].test_subset if _mixed_here(task, split) else split
    return open_dataset(task, Path(root), base)


@functools.lru_cache(maxsize=4)
def _noise_csv(root: str) -> dict[str, float]:
    path = Path(root) / "test-noisy" / "noise.csv"
    if not path.is_file():
        raise DataError(f"{path}: not found (test-noisy needs its SNR list; remake the set with acom data)")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    try:
        return {r["utterance_id"]: float(r["snr_db"]) for r in rows}
    except (KeyError, ValueError) as e:
        raise DataError(f"{path}: needs columns utterance_id and snr_db (a number): {e}") from e


def _snr_of(task: str, root: str, split: str, index: int) -> float | None:
    if split != "test-noisy":
        return None
    if TASKS[task].sequence:
        uid = subset_dataset(task, root, split).items[index].utterance_id
        if uid not in _noise_csv(root):
            raise DataError(f"{root}/test-noisy/noise.csv: no row for utterance {uid}")
        return _noise_csv(root)[uid]
    return SNRS_DB[index % len(SNRS_DB)]


def _mix_noise(audio: np.ndarray, snr_db: float, index: int) -> np.ndarray:
    """A test clip with held-out real noise at `snr_db` (the speech set's test pool: odd OpenSFX recordings)."""
    from acom.corpora.synth import noise as N
    recs = N.opensfx_recordings()
    test_pool = [r for i, r in enumerate(recs) if i % 2 == 1]
    rng = np.random.default_rng([7, index])
    noise = N.loop_to_length(test_pool[index % len(test_pool)].audio, len(audio), rng)
    return (audio + N.scale_to_snr(audio, noise, snr_db)).astype(np.float32)


def _coded_item(job: tuple[str, str, str, str | None, int]) -> tuple[np.ndarray, int, bool, float, float | None]:
    """(audio after the codec [N], payload bits, padded, encoder CPU s, SNR) of item `index` (a worker)."""
    task, root, split, spec, index = job
    audio, _ = subset_dataset(task, root, split)[index]
    snr = _snr_of(task, root, split, index)
    if _mixed_here(task, split):
        audio = _mix_noise(audio, snr, index)
    codec = _codec_for(spec, index)
    if codec is None:
        return audio, 0, False, 0.0, snr
    out = C.run_codec(codec, audio)
    return out.audio, out.payload_bits, out.padded, out.encode_cpu_s, snr


def _source_key(task: str, root: Path, split: str, spec: str | None, n_mels: int) -> str:
    ds = subset_dataset(task, str(root), split)
    listing = "\n".join(f"{it.path.name} {it.path.stat().st_size}" for it in ds.items)
    text = f"{FORMAT_VERSION}|{task}|{split}|{spec}|{n_mels}|{listing}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def coded_set(task: str, root: Path, split: str, spec: str | None, n_mels: int, *, cache: Path | None = None,
              workers: int = 2, progress: bool = True) -> CodedSet:
    """`split` of the data set at `root` (train, dev, the clean test set or test-noisy) through `spec`: a codec
    system ('opus-6k'), a family ('family:opus': its modes in turn, for fine-tuning) or None (as recorded)."""
    cache = cache or default_cache(root) / "codecs"
    name = f"{task}-{split}-{(spec or 'none').replace(':', '-')}-{n_mels}"
    path, side = cache / f"{name}.safetensors", cache / f"{name}.json"
    key = _source_key(task, root, split, spec, n_mels)
    if path.is_file() and side.is_file():
        meta = json.loads(side.read_text())
        if meta.get("source_key") == key:
            return CodedSet(FeatureSet.load(path), meta["snr_db"], meta["payload_bits"], meta["seconds"],
                            meta["padded"], meta["encode_cpu_s"])
    ds = subset_dataset(task, str(root), split)
    frontend = LogMel(FrontEndConfig(n_mels=n_mels))
    jobs = [(task, str(root), split, spec, i) for i in range(len(ds))]
    feats, snrs, bits, seconds, padded, cpu = [], [], 0, 0.0, 0, 0.0
    workers = workers if len(jobs) >= 100 else 1  # starting spawned workers costs seconds: not for small sets
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=_spawn()))
            results = pool.map(_coded_item, jobs, chunksize=8)
        else:
            results = map(_coded_item, jobs)
        for audio, b, pad, c, snr in tqdm(results, total=len(jobs), desc=f"{split} via {spec or 'none'}",
                                          unit="clip", disable=not progress, leave=False):
            if len(audio) < frontend.cfg.win_length:
                audio = np.pad(audio, (0, frontend.cfg.win_length - len(audio)))
            with torch.no_grad():
                feats.append(frontend(torch.from_numpy(audio)[None])[0].to(torch.float16))
            snrs.append(snr)
            bits, seconds, padded, cpu = bits + b, seconds + len(audio) / C.SAMPLE_RATE, padded + pad, cpu + c
    items = ds.items
    targets = [TASKS[task].target(it) for it in items]
    ids = [getattr(it, "utterance_id", None) or it.clip_id for it in items]
    fs = FeatureSet(task, feats, targets, ids, n_mels, key)
    fs.save(path)
    side.write_text(json.dumps({"source_key": key, "spec": spec, "snr_db": snrs, "payload_bits": bits,
                                "seconds": round(seconds, 3), "padded": padded, "encode_cpu_s": round(cpu, 4)}))
    return CodedSet(fs, snrs, bits, seconds, padded, cpu)


def _spawn():
    # workers never touch torch; spawn keeps them clear of the parent's OpenMP state
    import multiprocessing
    return multiprocessing.get_context("spawn")


def encoder_cpu_s_per_s(codec: C.Codec, audio: np.ndarray, repeats: int = 3) -> float:
    """Median encoder CPU seconds per second of `audio` [N] (16 kHz) on this machine (the codecs are
    single-threaded)."""
    runs = [C.run_codec(codec, audio).encode_cpu_s for _ in range(repeats)]
    return float(np.median(runs)) / (len(audio) / C.SAMPLE_RATE)
