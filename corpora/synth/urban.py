"""A synthetic UrbanSound8K: ten procedurally synthesized urban sound classes in the real set's on-disk format.

The layout is that of UrbanSound8K (``metadata/UrbanSound8K.csv`` with the real columns, audio in
``audio/fold1`` .. ``audio/fold10``, files named ``{fsID}-{classID}-{occurrence}-{slice}.wav``), so the loader
for the real data set reads it unchanged. Each clip is a pure function of (seed, class, index): a foreground
synthesized with numpy from parameters drawn per clip, mixed over a real OpenSFX field recording at a drawn SNR.
``metadata/synth_details.csv`` (not in the real set) records each clip's background and SNR; it also marks
the folder as ours, so regenerating may replace it while a real UrbanSound8K folder is never touched.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from acom.core.audio import SAMPLE_RATE, write_audio
from acom.corpora.datasets import US8K_CLASSES, US8K_COLUMNS
from acom.corpora.synth.noise import Recording, loop_to_length, opensfx_recordings, scale_to_snr
from acom.corpora.synth.output import finish_out, prepare_out, write_csv
from acom.corpora.synth.urban_sounds import GENERATORS
from acom.errors import DataError

CLASSES: tuple[str, ...] = US8K_CLASSES  # index = classID
CSV_COLUMNS: tuple[str, ...] = US8K_COLUMNS
DETAILS_COLUMNS: tuple[str, ...] = ("slice_file_name", "background", "snr_db", "duration_s")
N_FOLDS = 10
MAX_SECONDS = 4.0
FOREGROUND_PEAK = (0.25, 0.5)  # drawn per clip: levels vary as in the real set, and 0.5 leaves headroom for noise
MIX_PEAK = 0.95
# Backgrounds whose title (original file names included) names a class or a sound much like one: a background
# must never carry a second class. Matched at the start of a word; "_" counts as a separator ("slide_whistle").
_EXCLUDED = re.compile(r"(?<![a-z])(?:horn|jackhammer|hammer|drill|siren|whistle|crossing|gun|explosion|crash|"
                       r"music|dog|bark|children|saw|chainsaw|morse|smithy|monkey|oooh|roar)", re.IGNORECASE)
# Pseudo Freesound ids: an affine map modulo a prime is a bijection, so ids are unique without bookkeeping.
_FSID_PRIME = 899_981
MAX_CLIPS_PER_CLASS = 10_000  # the real set has at most 1000; pseudo fsIDs stay unique far beyond
SR = SAMPLE_RATE


@dataclass(frozen=True, kw_only=True)
class ClipInfo:
    """What render_clip decided about one clip, beyond its audio."""

    class_id: int
    """classID, the index into CLASSES."""
    index: int
    """Index of the clip within its class."""
    fs_id: int
    """Pseudo Freesound id of the clip's source recording (one slice per source)."""
    occurrence: int
    """Occurrence number within the source recording (the third part of the file name)."""
    slice_no: int
    """Slice number within the occurrence (the fourth part of the file name)."""
    start: float
    """Start of the slice in the (imagined) source recording, in seconds."""
    duration_s: float
    """Length of the clip in seconds (at most MAX_SECONDS)."""
    salience: int
    """1 = foreground (SNR 10-20 dB), 2 = background (SNR 0-10 dB), as the real set labels it."""
    snr_db: float
    """Power of the foreground over the power of the background across the whole clip, in dB."""
    background: str
    """Title of the OpenSFX recording under the clip."""

    @property
    def file_name(self) -> str:
        return f"{self.fs_id}-{self.class_id}-{self.occurrence}-{self.slice_no}.wav"


# ---- one clip ----

@functools.lru_cache(maxsize=1)
def backgrounds() -> tuple[Recording, ...]:
    """The OpenSFX recordings allowed under a clip: those whose title names no class (see _EXCLUDED)."""
    return tuple(r for r in opensfx_recordings() if not _EXCLUDED.search(r.title))


def pseudo_fs_id(seed: int, class_id: int, index: int) -> int:
    """A six-digit pseudo Freesound id, unique within a set for index < MAX_CLIPS_PER_CLASS."""
    key = index * len(CLASSES) + class_id
    scale = 1 + (seed * 2_654_435_761 + 12_345) % (_FSID_PRIME - 1)  # nonzero, so the map is one-to-one
    return 100_000 + (key * scale + seed * 40_503 + 52_711) % _FSID_PRIME


def render_clip(seed: int, class_id: int, index: int) -> tuple[np.ndarray, np.ndarray, ClipInfo]:
    """Clip `index` of class `class_id`: (foreground [N], background [N], info), both float32 at 16 kHz.

    The file holds foreground + background. Everything is drawn from one generator seeded with
    (seed, class_id, index), so a clip does not depend on which worker made it or on the set's size.
    """
    rng = np.random.default_rng([seed, class_id, index])
    # Most real clips are cut to the full 4 s; shorter ones are events that ended sooner.
    duration = MAX_SECONDS if rng.random() < 0.6 else round(float(rng.uniform(1.0, MAX_SECONDS)), 3)
    n = int(round(duration * SR))
    fg = GENERATORS[CLASSES[class_id]](rng, n)
    peak = float(np.abs(fg).max())
    assert peak > 0, f"{CLASSES[class_id]} generator made silence"
    fg = (fg * (rng.uniform(*FOREGROUND_PEAK) / peak)).astype(np.float32)
    salience = 1 if rng.random() < 2 / 3 else 2  # about two thirds of the real clips are foreground
    snr_db = round(float(rng.uniform(10, 20) if salience == 1 else rng.uniform(0, 10)), 2)
    recs = backgrounds()
    rec = recs[int(rng.integers(len(recs)))]
    bg = scale_to_snr(fg, loop_to_length(rec.audio, n, rng), snr_db)
    mix_peak = float(np.abs(fg + bg).max())
    if mix_peak > MIX_PEAK:  # scale both alike: the SNR stays, and the file cannot clip
        fg, bg = fg * np.float32(MIX_PEAK / mix_peak), bg * np.float32(MIX_PEAK / mix_peak)
    slice_no = int(rng.integers(0, 5))
    info = ClipInfo(class_id=class_id, index=index, fs_id=pseudo_fs_id(seed, class_id, index),
                    occurrence=int(rng.integers(0, 3)), slice_no=slice_no,
                    start=round(float(rng.uniform(0, 30)) + 4.0 * slice_no, 6), duration_s=duration,
                    salience=salience, snr_db=snr_db, background=rec.title)
    return fg, bg, info


def clip_folds(seed: int, class_id: int, clips_per_class: int) -> np.ndarray:
    """Fold (1..N_FOLDS) of each clip of a class [clips_per_class]: a seeded shuffle dealt round the folds."""
    # A fourth, nonzero seed word: a clip's three-word seed can never equal it.
    order = np.random.default_rng([seed, class_id, clips_per_class, 1]).permutation(clips_per_class)
    folds = np.empty(clips_per_class, dtype=int)
    folds[order] = np.arange(clips_per_class) % N_FOLDS + 1
    return folds


def _make_clip(job: tuple[int, int, int, int, str]) -> tuple[list, list]:
    """Render one clip and write it under root/audio/fold{fold}; returns its (metadata row, details row)."""
    seed, class_id, index, fold, root = job
    fg, bg, info = render_clip(seed, class_id, index)
    write_audio(Path(root) / "audio" / f"fold{fold}" / info.file_name, fg + bg, SR)
    end = round(info.start + info.duration_s, 6)
    row = [info.file_name, info.fs_id, info.start, end, info.salience, fold, class_id, CLASSES[class_id]]
    return row, [info.file_name, info.background, f"{info.snr_db:.2f}", info.duration_s]


# ---- the set ----

def _check_args(out: Path, clips_per_class: int, seed: int, workers: int) -> None:
    """Raise DataError for an argument outside what generate_urban allows."""
    for name, value, lo, hi in (("clips_per_class", clips_per_class, 1, MAX_CLIPS_PER_CLASS),
                                ("seed", seed, 0, 2 ** 32 - 1), ("workers", workers, 1, 256)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not lo <= value <= hi:
            raise DataError(f"{name} must be an integer from {lo} to {hi}, got {value!r}")


def _render_all(jobs: list[tuple[int, int, int, int, str]], workers: int, progress: bool) -> list[tuple[list, list]]:
    """Run _make_clip over jobs (in forked workers when workers > 1), results in job order."""
    # fork: workers inherit the recordings loaded in the parent instead of each reading the archive again
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else contextlib.nullcontext()
    with pool, tqdm(total=len(jobs), desc="urban clips", unit="clip", disable=not progress) as bar:
        results = []
        for result in pool.imap(_make_clip, jobs, chunksize=4) if workers > 1 else map(_make_clip, jobs):
            results.append(result)
            bar.update(1)
        return results


def generate_urban(out: Path, *, clips_per_class: int, seed: int, workers: int = 2, progress: bool = True,
                   folds: tuple[int, ...] | None = None) -> dict:
    """Write a synthetic UrbanSound8K of clips_per_class clips for each of CLASSES under `out`.

    `folds` makes only the clips of those folds (each clip is the same as in the whole set, so a test fold
    can be remade alone). `out` must be new, empty, or a set this function wrote before (which is replaced).
    The set is built in ``out.tmp`` and renamed into place, so a failure never leaves half a set. Returns a summary:
    {"out", "clips", "clips_per_class": {class: n}, "clips_per_fold": {fold: n}, "total_seconds"}.
    """
    out = Path(out).resolve()  # "out.tmp" must be a sibling even when out is "."
    _check_args(out, clips_per_class, seed, workers)
    if folds is not None and (not folds or set(folds) - set(range(1, N_FOLDS + 1))):
        raise DataError(f"folds must be among 1..{N_FOLDS}, got {list(folds)}")
    backgrounds()  # loaded here, before forking, so that workers share it
    tmp = prepare_out(out, "metadata/synth_details.csv", {"audio", "metadata"})
    jobs = [(int(seed), c, i, int(fold), str(tmp)) for c in range(len(CLASSES))
            for i, fold in enumerate(clip_folds(seed, c, clips_per_class)) if folds is None or fold in folds]
    try:
        for fold in range(1, N_FOLDS + 1):  # every fold folder exists, as in the real set, even if empty
            (tmp / "audio" / f"fold{fold}").mkdir(parents=True)
        results = _render_all(jobs, workers, progress)
        write_csv(tmp / "metadata" / "UrbanSound8K.csv", CSV_COLUMNS, sorted(row for row, _ in results))
        write_csv(tmp / "metadata" / "synth_details.csv", DETAILS_COLUMNS, sorted(d for _, d in results))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finish_out(tmp, out)
    return {
        "out": str(out),
        "clips": len(results),
        "clips_per_class": dict(Counter(row[7] for row, _ in results)),
        "clips_per_fold": {f: sum(row[5] == f for row, _ in results) for f in range(1, N_FOLDS + 1)},
        "total_seconds": round(sum(d[3] for _, d in results), 3),
    }
