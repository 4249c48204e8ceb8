"""Waveform codec pipelines for the baselines: audio -> codec encoder -> payload -> decoder -> 16 kHz audio.

The conventional alternative to ACoM: the device compresses the waveform, the server decodes it and runs the
full uncut model. Codec2 (8 kHz) through pycodec2, except 450 bit/s, which pycodec2's bundled libcodec2 lacks
and Debian's `c2enc`/`c2dec` (package codec2) provide; Opus (16 kHz) through opuslib on Debian's libopus0;
MP3 encoded by lameenc (LAME) and decoded by PyAV (FFmpeg).

Bit rates are payload bits, never container bytes: Codec2 counts frames x bits per frame (c2enc rounds each
frame up to whole bytes, which the count leaves out); Opus the bytes of its packets as sent (no Ogg pages);
MP3 the bytes of its frames, headers and flush frames included (no ID3 or Xing/Info tag is written). Clips
shorter than one codec frame are padded with zeros and counted (`CodecOutput.padded`), never dropped. The
decoded audio is realigned by the codec's delay (measured once per codec on a probe signal) and cut to the
input length, so the server's model sees the same span of time as with the clean audio.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acom.errors import ToolError

SAMPLE_RATE = 16000  # what the models take


@dataclass(frozen=True)
class Codec:
    """One codec configuration."""

    family: str  # 'codec2', 'opus' or 'mp3'
    mode: str  # codec2 mode ('450', '700C', ...) or the target rate ('6k')
    target_bps: int  # the rate the codec is configured for
    sample_rate: int  # the rate the codec runs at

    @property
    def system(self) -> str:
        """Report name, e.g. 'codec2-700C', 'opus-6k', 'mp3-8k'."""
        return f"{self.family}-{self.mode}"


CODECS: tuple[Codec, ...] = (
    *(Codec("codec2", m, b, 8000) for m, b in (("450", 450), ("700C", 700), ("1200", 1200), ("1600", 1600),
                                                ("2400", 2400), ("3200", 3200))),
    *(Codec("opus", f"{k}k", k * 1000, 16000) for k in (6, 8, 12, 16)),
    *(Codec("mp3", f"{k}k", k * 1000, 16000) for k in (8, 16)),
)
FAMILIES = ("codec2", "opus", "mp3")


def get_codec(system: str) -> Codec:
    """The codec called `system` (e.g. 'opus-6k'); ToolError listing the known ones otherwise."""
    for c in CODECS:
        if c.system == system:
            return c
    raise ToolError(f"unknown codec {system!r}; known: {', '.join(c.system for c in CODECS)}")


@dataclass
class CodecOutput:
    """What one clip became."""

    audio: np.ndarray  # decoded float32 [N] at 16 kHz, N = the input's length
    payload_bits: int  # bits the device would send
    padded: bool  # the clip was shorter than one codec frame and was padded to one
    encode_cpu_s: float  # CPU seconds the encoder took (the device's share of the pipeline)


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x.astype(np.float32)
    import soxr
    return soxr.resample(x.astype(np.float32), sr_in, sr_out, quality="HQ").astype(np.float32)


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def _pad_to(x: np.ndarray, frame: int, extra: int = 0) -> tuple[np.ndarray, bool]:
    """x padded with zeros to at least one frame and then to whole frames, after `extra` more samples."""
    short = len(x) < frame
    n = max(len(x) + extra, frame)
    n = -(-n // frame) * frame
    return np.pad(x, (0, n - len(x))), short


# --- Codec2 ---------------------------------------------------------------------------------------------

_C2_MODE_450 = 10  # CODEC2_MODE_450 in codec2.h (codec2 1.0)


@functools.lru_cache(maxsize=None)
def _codec2_450_frame() -> tuple[int, int]:
    """(samples, bits) per frame of mode 450, asked of Debian's libcodec2 (the CLI cannot tell)."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("codec2")
    if name is None:
        raise ToolError("codec2-450 needs Debian's libcodec2 (apt-get install codec2)")
    lib = ctypes.CDLL(name)
    lib.codec2_create.restype = ctypes.c_void_p
    state = lib.codec2_create(_C2_MODE_450)
    if not state:
        raise ToolError(f"{name}: this libcodec2 has no 450 bit/s mode (codec2 >= 0.9 needed)")
    try:
        return lib.codec2_samples_per_frame(ctypes.c_void_p(state)), lib.codec2_bits_per_frame(ctypes.c_void_p(state))
    finally:
        lib.codec2_destroy(ctypes.c_void_p(state))


def _codec2_cli(pcm: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Mode 450 through Debian's c2enc/c2dec: (decoded int16, frames, encoder CPU seconds)."""
    for tool in ("c2enc", "c2dec"):
        if shutil.which(tool) is None:
            raise ToolError(f"codec2-450 needs `{tool}` from the Debian package codec2 (apt-get install codec2)")
    spf, _ = _codec2_450_frame()
    with tempfile.TemporaryDirectory(prefix="acom-c2-") as tmp:
        raw, bits, out = Path(tmp, "in.raw"), Path(tmp, "out.bit"), Path(tmp, "out.raw")
        raw.write_bytes(pcm.tobytes())
        t0 = _children_cpu()
        subprocess.run(["c2enc", "450", str(raw), str(bits)], check=True, capture_output=True)
        cpu = _children_cpu() - t0
        subprocess.run(["c2dec", "450", str(bits), str(out)], check=True, capture_output=True)
        return np.frombuffer(out.read_bytes(), np.int16), len(pcm) // spf, cpu


def _children_cpu() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _codec2(codec: Codec, x8k: np.ndarray, delay: int) -> tuple[np.ndarray, int, bool, float]:
    if codec.mode == "450":
        spf, bpf = _codec2_450_frame()
        pcm, short = _pad_to(_to_int16(x8k), spf, delay)
        out, frames, cpu = _codec2_cli(pcm)
        return out, frames * bpf, short, cpu
    try:
        import pycodec2
    except ImportError as e:
        raise ToolError(f"{codec.system} needs the Python package pycodec2 (pip install pycodec2): {e}") from e
    c2 = pycodec2.Codec2(700 if codec.mode == "700C" else int(codec.mode))
    spf, bpf = c2.samples_per_frame(), c2.bits_per_frame()
    pcm, short = _pad_to(_to_int16(x8k), spf, delay)
    t0 = time.process_time()
    frames = [c2.encode(pcm[i:i + spf]) for i in range(0, len(pcm), spf)]
    cpu = time.process_time() - t0
    out = np.concatenate([c2.decode(f) for f in frames])
    return out, len(frames) * bpf, short, cpu


# --- Opus -----------------------------------------------------------------------------------------------

OPUS_FRAME_MS = 20


def _opus(codec: Codec, x: np.ndarray, delay: int) -> tuple[np.ndarray, int, bool, float]:
    try:
        import opuslib
    except Exception as e:  # opuslib raises a plain Exception when libopus is missing
        raise ToolError(f"{codec.system} needs opuslib (pip) and libopus (apt-get install libopus0): {e}") from e
    sr = codec.sample_rate
    spf = sr * OPUS_FRAME_MS // 1000
    enc = opuslib.Encoder(sr, 1, opuslib.APPLICATION_VOIP)
    enc.bitrate = codec.target_bps
    pcm, short = _pad_to(_to_int16(x), spf, delay)
    t0 = time.process_time()
    packets = [enc.encode(pcm[i:i + spf].tobytes(), spf) for i in range(0, len(pcm), spf)]
    cpu = time.process_time() - t0
    dec = opuslib.Decoder(sr, 1)
    out = np.frombuffer(b"".join(dec.decode(p, spf) for p in packets), np.int16)
    return out, 8 * sum(len(p) for p in packets), short, cpu


# --- MP3 ------------------------------------------------------------------------------------------------

MP3_FRAME = 1152  # input samples per MPEG-1 frame; MPEG-2/2.5 frames hold 576, so 1152 covers both


def _mp3(codec: Codec, x: np.ndarray, delay: int) -> tuple[np.ndarray, int, bool, float, int]:
    try:
        import av
        import lameenc
    except ImportError as e:
        raise ToolError(f"{codec.system} needs the Python packages lameenc and av (pip): {e}") from e
    enc = lameenc.Encoder()
    enc.set_bit_rate(codec.target_bps // 1000)
    enc.set_in_sample_rate(codec.sample_rate)
    enc.set_channels(1)
    enc.set_quality(2)
    pcm, short = _pad_to(_to_int16(x), MP3_FRAME, delay)
    t0 = time.process_time()
    stream = bytes(enc.encode(pcm.tobytes()) + enc.flush())
    cpu = time.process_time() - t0
    with av.open(io.BytesIO(stream), format="mp3") as container:
        rate = container.streams.audio[0].rate  # LAME picks the output rate for the bit rate
        out = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    return _to_int16(out), 8 * len(stream), short, cpu, rate


# --- the pipeline ---------------------------------------------------------------------------------------


def _run(codec: Codec, audio: np.ndarray, delay: int) -> tuple[np.ndarray, int, bool, float]:
    """(decoded float32 at 16 kHz, not yet realigned, payload bits, padded, encoder CPU s)."""
    x = _resample(audio, SAMPLE_RATE, codec.sample_rate)
    d = delay * codec.sample_rate // SAMPLE_RATE  # room at the end for the samples the delay pushes out
    if codec.family == "codec2":
        out, bits, short, cpu = _codec2(codec, x, d)
        rate = codec.sample_rate
    elif codec.family == "opus":
        out, bits, short, cpu = _opus(codec, x, d)
        rate = codec.sample_rate
    else:
        out, bits, short, cpu, rate = _mp3(codec, x, d)
    return _resample(out.astype(np.float32) / 32768.0, rate, SAMPLE_RATE), bits, short, cpu


def _probe() -> np.ndarray:
    """1.5 s of voiced bursts at irregular spacing: an energy envelope any of the codecs keeps."""
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 20)).astype(np.float32)
    gate = np.zeros_like(t)
    at = 0.1
    while at < 1.35:
        length = rng.uniform(0.05, 0.15)
        gate[(t >= at) & (t < at + length)] = 1.0
        at += length + rng.uniform(0.05, 0.2)
    return (0.1 * voiced * gate).astype(np.float32)


def _envelope(x: np.ndarray, hop: int = 32) -> np.ndarray:
    n = len(x) // hop
    return np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))


@functools.lru_cache(maxsize=None)
def codec_delay(system: str) -> int:
    """Samples (16 kHz) by which `system`'s decoded audio lags its input, from the probe's energy envelope
    (2 ms steps; the waveform itself is not kept by parametric codecs such as Codec2)."""
    codec = get_codec(system)
    probe = _probe()
    out, _, _, _ = _run(codec, probe, 0)
    a, b = _envelope(probe), _envelope(out)
    a = (a - a.mean()) / (a.std() + 1e-9)
    b = (b - b.mean()) / (b.std() + 1e-9)
    lags = range(0, 100)  # up to 200 ms
    scores = [float(np.dot(a[: len(a) - lag], b[lag: len(a)])) for lag in lags]
    return int(np.argmax(scores)) * 32


def run_codec(codec: Codec, audio: np.ndarray) -> CodecOutput:
    """`audio` [N] (16 kHz float32) through `codec` and back, realigned and cut to N samples."""
    if audio.ndim != 1:
        raise ValueError(f"audio must be one channel [N], got shape {audio.shape}")
    delay = codec_delay(codec.system)
    out, bits, short, cpu = _run(codec, audio, delay)
    out = out[delay: delay + len(audio)]
    out = np.pad(out, (0, len(audio) - len(out)))
    return CodecOutput(out.astype(np.float32), bits, short, cpu)
