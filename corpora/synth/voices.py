"""The synthetic speakers: Debian's TTS engines (flite, festival, espeak-ng), each voice a LibriSpeech speaker.

A speaker is an engine, a voice, and for espeak-ng an accent and a variant, with its own rate and pitch.
Test speakers never read in train: both recordings of the `slt` speaker (flite and festival HTS), the
Caribbean accent `en-029`, and the espeak-ng variants f4, m4 and m8, which no train speaker uses.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from acom.errors import ToolError

ENGINE_PACKAGES = {"flite": "flite", "festival": "festival", "espeak-ng": "espeak-ng", "sox": "sox"}


@dataclass(frozen=True, kw_only=True)
class Voice:
    """One synthetic speaker."""

    speaker_id: int  # LibriSpeech speaker id
    engine: str  # 'flite', 'festival' or 'espeak-ng'
    voice: str  # engine voice name (flite -voice, festival voice_<name>, espeak-ng language/accent)
    variant: str = ""  # espeak-ng variant (+m1, +f2, ...), empty otherwise
    sex: str  # 'M' or 'F', as the voice sounds (for SPEAKERS.TXT)
    rate: float = 1.0  # speaking-rate factor of this speaker (1 = engine default)
    pitch: int = 50  # espeak-ng pitch 0..99 of this speaker
    split: str  # 'train' (train and dev) or 'test' (test-clean and test-noisy only)

    @property
    def name(self) -> str:
        return f"{self.engine}:{self.voice}{'+' + self.variant if self.variant else ''}"


_TRAIN_ACCENTS = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-us-nyc")
_TRAIN_VARIANTS = (("m1", "M"), ("m2", "M"), ("m3", "M"), ("m5", "M"), ("m6", "M"), ("m7", "M"), ("f1", "F"),
                   ("f2", "F"), ("f3", "F"), ("f5", "F"), ("klatt", "M"), ("klatt3", "M"), ("Alicia", "F"),
                   ("Andy", "M"), ("annie", "F"), ("belinda", "F"), ("david", "M"), ("linda", "F"))
_TEST_ESPEAK = (("en-029", "f4", "F"), ("en-029", "m4", "M"), ("en-us", "m8", "M"), ("en-gb", "f4", "F"),
                ("en-029", "m1", "M"), ("en-gb-x-rp", "m4", "M"))


def _build_voices() -> tuple[Voice, ...]:
    """The fixed speaker table (ids are stable across versions as long as entries are only appended)."""
    voices = [
        Voice(speaker_id=101, engine="flite", voice="kal16", sex="M", split="train"),
        Voice(speaker_id=102, engine="flite", voice="awb", sex="M", split="train"),
        Voice(speaker_id=103, engine="flite", voice="rms", sex="M", split="train"),
        Voice(speaker_id=104, engine="flite", voice="kal", sex="M", rate=1.05, split="train"),
        Voice(speaker_id=105, engine="festival", voice="kal_diphone", sex="M", split="train"),
        Voice(speaker_id=106, engine="festival", voice="ked_diphone", sex="M", split="train"),
        Voice(speaker_id=901, engine="flite", voice="slt", sex="F", split="test"),
        Voice(speaker_id=902, engine="festival", voice="cmu_us_slt_arctic_hts", sex="F", split="test"),
    ]
    # espeak-ng: every train accent with a rotating pair of variants, rate and pitch spread per speaker
    k = 0
    for a, accent in enumerate(_TRAIN_ACCENTS):
        for j in range(3):
            variant, sex = _TRAIN_VARIANTS[(3 * a + j) % len(_TRAIN_VARIANTS)]
            voices.append(Voice(speaker_id=200 + k, engine="espeak-ng", voice=accent, variant=variant, sex=sex,
                                rate=0.85 + 0.05 * (k % 6), pitch=30 + (7 * k) % 40, split="train"))
            k += 1
    for i, (accent, variant, sex) in enumerate(_TEST_ESPEAK):
        voices.append(Voice(speaker_id=910 + i, engine="espeak-ng", voice=accent, variant=variant, sex=sex,
                            rate=0.9 + 0.05 * (i % 4), pitch=35 + 8 * i, split="test"))
    return tuple(voices)


VOICES = _build_voices()


def voices_for(split: str) -> tuple[Voice, ...]:
    """Voices of one split: 'train' (train and dev subsets) or 'test'."""
    return tuple(v for v in VOICES if v.split == split)


def check_tools() -> None:
    """Raise ToolError naming the Debian package of any missing TTS engine or sox."""
    exes = {"flite": "flite", "festival": "text2wave", "espeak-ng": "espeak-ng", "sox": "sox"}
    missing = [ENGINE_PACKAGES[k] for k, exe in exes.items() if shutil.which(exe) is None]
    if missing:
        raise ToolError(f"missing text-to-speech tools; install the Debian packages: {' '.join(missing)}")


def synthesize(voice: Voice, text: str, rate: float) -> tuple[np.ndarray, int]:
    """Speak `text` with `voice` at `rate` x its own rate; returns (mono float32 [N], sample rate)."""
    with tempfile.TemporaryDirectory(prefix="acom-tts-") as tmp:
        wav, txt = Path(tmp) / "out.wav", Path(tmp) / "in.txt"
        txt.write_text(text.lower() + "\n")
        r = voice.rate * rate
        if voice.engine == "flite":
            cmd = ["flite", "-voice", voice.voice, "--setf", f"duration_stretch={1 / r:.3f}", "-f", str(txt),
                   "-o", str(wav)]
        elif voice.engine == "festival":
            cmd = ["text2wave", "-eval", f"(voice_{voice.voice})", "-eval",
                   f"(Parameter.set 'Duration_Stretch {1 / r:.3f})", str(txt), "-o", str(wav)]
        elif voice.engine == "espeak-ng":
            name = voice.voice + (f"+{voice.variant}" if voice.variant else "")
            cmd = ["espeak-ng", "-v", name, "-s", str(int(165 * r)), "-p", str(voice.pitch), "-f", str(txt),
                   "-w", str(wav)]
        else:
            raise ValueError(f"unknown engine {voice.engine!r}")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not wav.is_file():
            raise ToolError(f"{voice.name} failed on {text!r}: {proc.stderr.strip()[:300]}")
        audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    return audio.mean(axis=1), sr


def sox_effects(audio: np.ndarray, sr: int, effects: list[str], out_sr: int) -> np.ndarray:
    """Run float audio [N] through sox `effects` and resample to out_sr; returns float32 [M].

    Raw 32-bit float in and out, so sox adds no dither and the result is deterministic.
    """
    cmd = ["sox", "-q", "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-r", str(sr), "-",
           "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-", *effects, "rate", "-h", str(out_sr)]
    proc = subprocess.run(cmd, input=audio.astype("<f4").tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise ToolError(f"sox {' '.join(effects)} failed: {proc.stderr.decode(errors='replace')[:300]}")
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
