"""Reading and writing audio files: one place that knows sample rates, channels and damaged files."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from acom.errors import DataError

SAMPLE_RATE = 16000


class LoadStats(collections.Counter):
    """Counts of what loading did to files: 'resampled', 'downmixed', 'skipped: <reason>'."""

    def summary(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(self.items())) or "nothing converted or skipped"


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE,
               stats: LoadStats | None = None) -> np.ndarray:
    """Read an audio file as mono float32 [N] at `sample_rate`.

    Stereo is averaged to mono and other sample rates are resampled (both the obvious intent, and
    counted in `stats`). A missing, empty, truncated or undecodable file raises DataError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: audio file not found")
    try:
        info = sf.info(str(path))
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise DataError(f"{path}: not a readable audio file (expected WAV/FLAC/OGG; {e})") from e
    if audio.shape[0] == 0:
        raise DataError(f"{path}: audio file holds no samples")
    if info.frames > 0 and audio.shape[0] < info.frames:
        raise DataError(f"{path}: truncated: header says {info.frames} frames, file holds {audio.shape[0]}")
    if not np.all(np.isfinite(audio)):
        raise DataError(f"{path}: audio holds NaN or infinite samples")
    if audio.shape[1] > 1:
        audio = audio.mean(axis=1, keepdims=True)
        if stats is not None:
            stats["downmixed"] += 1
    mono = audio[:, 0]
    if sr != sample_rate:
        mono = resample(mono, sr, sample_rate)
        if stats is not None:
            stats["resampled"] += 1
    return np.ascontiguousarray(mono, dtype=np.float32)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample float audio [N] from sr_in to sr_out (soxr, high quality, deterministic)."""
    if sr_in == sr_out:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio.astype(np.float32, copy=False), sr_in, sr_out, quality="HQ").astype(np.float32)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono float audio [N] as 16-bit FLAC or WAV (by suffix), clipping to [-1, 1] without dither."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.round(np.clip(audio, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    sf.write(str(path), pcm, sample_rate, subtype="PCM_16")
