"""Noise for the synthetic data sets: real recordings that Debian ships, synthetic noise, mixing at an SNR.

The real recordings are the OpenSFX sound set (Debian package ``openttd-opensfx``, CC-BY/CC0/CC-BY-SA field
recordings of vehicles, machines, crowds), read from its ``opensfx.cat`` archive.
"""

from __future__ import annotations

import functools
import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from acom.core.audio import SAMPLE_RATE, resample
from acom.errors import ToolError

OPENSFX_CAT = Path("/usr/share/games/openttd/baseset/opensfx/opensfx.cat")
SYNTHETIC_KINDS = ("white", "pink", "brown", "hum", "clatter")
# Noise is limited to this many standard deviations before scaling, so that a mixture at 0 dB SNR
# cannot clip and the SNR written to disk is the SNR measured on the file.
NOISE_CREST = 4.0


@dataclass(frozen=True)
class Recording:
    """One real recording: its title (with author and license) and mono audio [N] at 16 kHz."""

    title: str
    audio: np.ndarray


def _parse_cat(blob: bytes) -> list[tuple[str, bytes]]:
    """Split an OpenTTD .cat archive into (title, wav bytes): a table of (offset, size) then entries."""
    first = struct.unpack_from("<I", blob, 0)[0] & 0x7FFFFFFF
    entries = []
    for i in range(first // 8):
        off, size = struct.unpack_from("<II", blob, 8 * i)
        off &= 0x7FFFFFFF  # the high bit flags the entry's format, not part of the offset
        name_len = blob[off]
        title = blob[off + 1:off + 1 + name_len].rstrip(b"\0").decode("latin-1")
        entries.append((title, blob[off + 1 + name_len:off + size]))
    return entries


@functools.lru_cache(maxsize=1)
def opensfx_recordings(min_seconds: float = 1.0) -> tuple[Recording, ...]:
    """All OpenSFX recordings of at least `min_seconds`, mono at 16 kHz, in archive order."""
    if not OPENSFX_CAT.is_file():
        raise ToolError(f"{OPENSFX_CAT} not found: install the Debian package openttd-opensfx "
                        "(apt-get install openttd-opensfx), which ships the real noise recordings")
    recs = []
    for title, wav in _parse_cat(OPENSFX_CAT.read_bytes()):
        try:
            audio, sr = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError):
            continue  # a few entries have headers libsndfile rejects; the rest are plenty
        mono = resample(audio.mean(axis=1), sr, SAMPLE_RATE)
        if len(mono) >= min_seconds * SAMPLE_RATE and np.std(mono) > 1e-4:
            recs.append(Recording(title=title, audio=mono))
    if len(recs) < 8:
        raise ToolError(f"{OPENSFX_CAT}: only {len(recs)} usable recordings; the package looks damaged")
    return tuple(recs)


def loop_to_length(audio: np.ndarray, n: int, rng: np.random.Generator, fade: int = 400) -> np.ndarray:
    """A segment [n] of `audio` from a random offset, looped with short crossfades when too short."""
    out = audio[int(rng.integers(0, len(audio))):].astype(np.float32)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    while len(out) < n:
        # crossfade the loop point so it does not click
        head = audio[:fade] * ramp + out[-fade:] * ramp[::-1] if len(out) >= fade else audio[:fade]
        out = np.concatenate([out[:-fade] if len(out) >= fade else out, head, audio[fade:]])
    return out[:n].astype(np.float32)


def synthetic_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Synthetic noise [n] of a kind in SYNTHETIC_KINDS, unit variance before limiting."""
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind in ("pink", "brown"):
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
        f[0] = f[1] if n > 1 else 1.0
        spec /= np.sqrt(f) if kind == "pink" else f
        x = np.fft.irfft(spec, n)
    elif kind == "hum":
        t = np.arange(n) / SAMPLE_RATE
        f0 = rng.choice([50.0, 60.0]) * rng.uniform(0.98, 1.02)
        x = sum(rng.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6.3)) for h in range(1, 8))
        x = x + 0.1 * rng.standard_normal(n)
    elif kind == "clatter":
        x = 0.05 * rng.standard_normal(n)
        for _ in range(max(1, int(n / SAMPLE_RATE * rng.uniform(2, 8)))):
            at, length = int(rng.integers(0, n)), int(rng.integers(200, 2000))
            burst = rng.standard_normal(length) * np.exp(-np.arange(length) / rng.uniform(50, 400))
            x[at:at + length] += burst[: n - at]
    else:
        raise ValueError(f"unknown synthetic noise kind {kind!r}; allowed: {', '.join(SYNTHETIC_KINDS)}")
    x = np.asarray(x, dtype=np.float64)
    return ((x - x.mean()) / (x.std() + 1e-12)).astype(np.float32)


def limit_crest(noise: np.ndarray, crest: float = NOISE_CREST) -> np.ndarray:
    """Clip `noise` to +-crest standard deviations (keeps impulsive noise from clipping a mixture)."""
    sd = float(np.std(noise)) + 1e-12
    return np.clip(noise, -crest * sd, crest * sd).astype(np.float32)


def power_db(x: np.ndarray) -> float:
    """Mean power of x in dB."""
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def scale_to_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`noise` [N] scaled so that power(clean) / power(noise) is `snr_db` (noise is crest-limited first)."""
    if len(noise) != len(clean):
        raise ValueError(f"clean has {len(clean)} samples, noise {len(noise)}; they must match")
    noise = limit_crest(noise)
    gain_db = power_db(clean) - power_db(noise) - snr_db
    return (noise * 10 ** (gain_db / 20)).astype(np.float32)


def measured_snr_db(clean: np.ndarray, mixture: np.ndarray) -> float:
    """SNR of `mixture` [N] against the `clean` [N] it contains, in dB."""
    return power_db(clean) - power_db(mixture - clean)
