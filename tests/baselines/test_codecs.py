"""The codec pipelines: real codecs (pycodec2, Debian c2enc/c2dec, opuslib, lameenc + PyAV), payload bits
counted as the codec sends them, decoded audio aligned with the input, short clips padded and counted."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest

from acom.baselines import codecs as C
from acom.errors import ToolError


def _speechlike(seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    """Voiced bursts with a wandering pitch: what Codec2's speech model can follow."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * C.SAMPLE_RATE)) / C.SAMPLE_RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / C.SAMPLE_RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 25))
    gate = (np.sin(2 * np.pi * 2.3 * t + rng.uniform(0, 6)) > -0.2).astype(float)
    return (0.08 * x * gate).astype(np.float32)


def _envelope_corr(a: np.ndarray, b: np.ndarray) -> float:
    ea, eb = C._envelope(a, 160), C._envelope(b, 160)  # 10 ms energy
    return float(np.corrcoef(ea, eb)[0, 1])


@pytest.mark.parametrize("codec", C.CODECS, ids=lambda c: c.system)
def test_codec_round_trip(codec: C.Codec) -> None:
    x = _speechlike()
    out = C.run_codec(codec, x)
    assert out.audio.shape == x.shape and out.audio.dtype == np.float32
    assert not out.padded
    # aligned: the decoded energy envelope follows the input's at lag 0 (Codec2, a vocoder, only roughly)
    assert _envelope_corr(x, out.audio) > (0.6 if codec.family == "codec2" else 0.95), codec.system
    bps = out.payload_bits / 4.0
    # Codec2 and MP3 run at their rate (plus the frames that flush the delay); Opus VBR may send less
    low = 0.5 if codec.family == "opus" else 0.99
    assert low * codec.target_bps <= bps <= 1.2 * codec.target_bps, (codec.system, bps)
    assert out.encode_cpu_s > 0


def test_codec2_counts_bits_not_bytes(tmp_path) -> None:
    """c2enc rounds each 18-bit frame of mode 450 up to 3 bytes: the count is frames x 18 bits."""
    codec = C.get_codec("codec2-450")
    spf, bpf = C._codec2_450_frame()
    assert (spf, bpf) == (320, 18)
    x = _speechlike(2.0)
    out = C.run_codec(codec, x)
    delay8k = C.codec_delay(codec.system) // 2
    frames = math.ceil((len(x) // 2 + delay8k) / spf)
    assert out.payload_bits == frames * bpf
    raw = tmp_path / "x.raw"
    raw.write_bytes(C._to_int16(C._resample(x, 16000, 8000)).tobytes())
    subprocess.run(["c2enc", "450", str(raw), str(tmp_path / "x.bit")], check=True)
    assert (tmp_path / "x.bit").stat().st_size * 8 > out.payload_bits  # byte-rounded file is bigger


def test_short_clip_is_padded_and_counted() -> None:
    for system in ("codec2-700C", "opus-6k", "mp3-8k", "codec2-450"):
        out = C.run_codec(C.get_codec(system), _speechlike(0.005))
        assert out.padded, system
        assert out.audio.shape == (80,)
        assert out.payload_bits > 0


def test_missing_tool_names_the_debian_package(monkeypatch) -> None:
    monkeypatch.setattr(C.shutil, "which", lambda name: None)
    with pytest.raises(ToolError, match=r"c2enc.*Debian package codec2"):
        C.run_codec(C.get_codec("codec2-450"), _speechlike(1.0))


def test_unknown_codec_lists_the_known_ones() -> None:
    with pytest.raises(ToolError, match="opus-6k"):
        C.get_codec("opus-5k")


def test_delays_match_the_codecs_documented_ones() -> None:
    # Opus at 16 kHz looks ahead 6.5 ms (104 samples); LAME + decoder delay 576 + 529 samples at the MP3's rate
    assert abs(C.codec_delay("opus-6k") - 104) <= 32
    assert abs(C.codec_delay("mp3-8k") - 2 * 1105) <= 64  # 8 kHz MPEG-2.5 at 8 kbit/s
