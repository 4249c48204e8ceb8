"""`acom data synth-speech`: a speech data set in LibriSpeech's on-disk layout, from Debian's TTS engines.

Subsets: `train` (augmented: tempo, pitch, reverb, additive noise), `dev` (train voices, unseen sentences),
`test-clean` (unseen voices, unseen sentences) and `test-noisy` (test-clean mixed with noise that train
never hears, at 0, 5, 10 and 20 dB SNR, the SNR of each utterance in `test-noisy/noise.csv`).
Every utterance is a pure function of (seed, subset, index), so the set is identical for a seed whatever
the number of workers.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from acom.core.audio import SAMPLE_RATE, write_audio
from acom.corpora.synth import noise as N
from acom.corpora.synth import text
from acom.corpora.synth import voices as V
from acom.corpora.synth.output import finish_out, prepare_out, write_csv
from acom.errors import DataError

SUBSET_SHARES = {"train": 0.8, "dev": 0.1, "test-clean": 0.1}
_SUBSET_CODE = {"train": 1, "dev": 2, "test-clean": 3}
_SENTENCE_POOL = {"train": "train", "dev": "dev", "test-clean": "test"}
_VOICE_POOL = {"train": "train", "dev": "train", "test-clean": "test"}
TEST_SNRS_DB = (0.0, 5.0, 10.0, 20.0)
SPEECH_RMS = 10 ** (-25 / 20)  # speech level -25 dBFS ...
SPEECH_PEAK = 0.5  # ... but never above this peak, so 0 dB of crest-limited noise cannot clip
UTTS_PER_CHAPTER = 20
MARKER = "synth_manifest.json"


@dataclass(frozen=True, kw_only=True)
class SpeechSynthConfig:
    """Settings of one generated speech set."""

    minutes: float  # minutes of clean speech over train + dev + test-clean (test-noisy is test-clean again)
    seed: int = 0  # every random choice derives from this
    workers: int = 2  # processes synthesizing in parallel
    train_noise_prob: float = 0.3  # share of train utterances with additive noise (SNR 5-30 dB)
    train_effect_prob: float = 0.5  # chance of each of tempo, pitch and reverb on a train utterance
    subsets: tuple[str, ...] = ("train", "dev", "test-clean")  # which to make (test-noisy comes with test-clean);
    # each subset is the same whichever others are made, so a test set can be remade alone


@dataclass(frozen=True, kw_only=True)
class UttJob:
    """Everything needed to render one utterance; produced by `plan_job`, rendered by `render_job`."""

    subset: str
    index: int
    speaker_id: int
    text: str
    rate: float  # per-utterance speaking-rate jitter around the speaker's own
    effects: tuple[str, ...]  # sox effects (train only)
    noise: str  # '' for none, else 'opensfx:<n>' or 'synthetic:<kind>'
    snr_db: float  # SNR of the added noise (train) or of the test-noisy copy (test-clean)
    seed: tuple[int, ...]  # RNG seed of this utterance's noise


def _noise_pool(split: str) -> list[str]:
    """Noise sources of a split: OpenSFX recordings alternate between train and test; synthetic kinds in both."""
    recs = N.opensfx_recordings()
    real = [f"opensfx:{i}" for i in range(len(recs)) if i % 2 == (0 if split == "train" else 1)]
    return real + [f"synthetic:{k}" for k in N.SYNTHETIC_KINDS]


@functools.lru_cache(maxsize=16)
def _order(seed: int, code: int, which: int, n: int) -> np.ndarray:
    """A seeded permutation of range(n): the order voices and sentences are used in."""
    return np.random.default_rng([seed, code, which]).permutation(n)


def plan_job(subset: str, index: int, seed: int, cfg: SpeechSynthConfig) -> UttJob:
    """The recipe of utterance `index` of `subset`: voice, sentence, augmentation, noise."""
    code = _SUBSET_CODE[subset]
    pool = V.voices_for(_VOICE_POOL[subset])
    voice_order = _order(seed, code, 0, len(pool))
    sentences = text.sentences()[_SENTENCE_POOL[subset]]
    sentence_order = _order(seed, code, 1, len(sentences))
    rng = np.random.default_rng([seed, code, 2, index])
    voice = pool[voice_order[index % len(pool)]]
    effects: list[str] = []
    noise, snr = "", 0.0
    if subset == "train":
        p = cfg.train_effect_prob
        if rng.random() < p:
            effects += ["tempo", f"{rng.uniform(0.9, 1.1):.3f}"]
        if rng.random() < p:
            effects += ["pitch", f"{rng.uniform(-150, 150):.0f}"]
        if rng.random() < p * 0.6:
            effects += ["reverb", f"{rng.uniform(10, 60):.0f}", "50", f"{rng.uniform(20, 100):.0f}"]
        if rng.random() < cfg.train_noise_prob:
            sources = _noise_pool("train")
            noise, snr = sources[rng.integers(len(sources))], float(np.round(rng.uniform(5, 30), 1))
    elif subset == "test-clean":
        sources = _noise_pool("test")
        noise, snr = sources[rng.integers(len(sources))], TEST_SNRS_DB[index % len(TEST_SNRS_DB)]
    return UttJob(subset=subset, index=index, speaker_id=voice.speaker_id,
                  text=sentences[sentence_order[index % len(sentences)]], rate=float(rng.uniform(0.92, 1.08)),
                  effects=tuple(effects), noise=noise, snr_db=snr, seed=(seed, code, 3, index))


def _noise_signal(source: str, n: int, rng: np.random.Generator) -> np.ndarray:
    kind, _, name = source.partition(":")
    if kind == "opensfx":
        return N.loop_to_length(N.opensfx_recordings()[int(name)].audio, n, rng)
    return N.synthetic_noise(name, n, rng)


def render_job(job: UttJob) -> tuple[np.ndarray, np.ndarray | None]:
    """(clean-or-train audio [N], test-noisy copy [N] or None), 16 kHz float32, at the set's speech level."""
    voice = next(v for v in V.VOICES if v.speaker_id == job.speaker_id)
    raw, sr = V.synthesize(voice, job.text, job.rate)
    speech = V.sox_effects(raw, sr, list(job.effects), SAMPLE_RATE)
    speech *= min(SPEECH_RMS / (np.sqrt(np.mean(speech.astype(np.float64) ** 2)) + 1e-9),
                  SPEECH_PEAK / (np.abs(speech).max() + 1e-9))
    if not job.noise:
        return speech, None
    rng = np.random.default_rng(job.seed)
    scaled = N.scale_to_snr(speech, _noise_signal(job.noise, len(speech), rng), job.snr_db)
    if job.subset == "train":
        return speech + scaled, None
    return speech, speech + scaled


def utterance_id(job: UttJob) -> tuple[int, int, str]:
    """(speaker, chapter, 'SPEAKER-CHAPTER-UTT'): chapters hold UTTS_PER_CHAPTER of a speaker's utterances."""
    pool = V.voices_for(_VOICE_POOL[job.subset])
    nth = job.index // len(pool)  # this speaker's nth utterance in the subset (voices go round robin)
    chunk = nth // UTTS_PER_CHAPTER
    if chunk >= 100:
        raise DataError(f"too many utterances per speaker in {job.subset} (more than {100 * UTTS_PER_CHAPTER}); "
                        "ask for fewer minutes")
    chapter = job.speaker_id * 1000 + _SUBSET_CODE[job.subset] * 100 + chunk
    return job.speaker_id, chapter, f"{job.speaker_id}-{chapter}-{nth % UTTS_PER_CHAPTER:04d}"


def _render_indexed(job: UttJob) -> tuple[UttJob, np.ndarray, np.ndarray | None]:
    clean, noisy = render_job(job)
    return job, clean, noisy


def _render_subset(subset: str, target_s: float, min_utts: int, cfg: SpeechSynthConfig, pool, bar) -> list:
    """Render utterances of `subset` in plan order until `target_s` seconds (and `min_utts`) are reached."""
    done, total_s, index, batch = [], 0.0, 0, max(8, 8 * cfg.workers)
    while total_s < target_s or len(done) < min_utts:
        jobs = [plan_job(subset, i, cfg.seed, cfg) for i in range(index, index + batch)]
        index += batch
        for job, clean, noisy in pool.imap(_render_indexed, jobs, chunksize=2):
            if total_s >= target_s and len(done) >= min_utts:
                break  # the rest of the batch is past the target; dropping it keeps the set seed-determined
            done.append((job, clean, noisy))
            total_s += len(clean) / SAMPLE_RATE
            bar.total = max(bar.total, bar.n + len(clean) / SAMPLE_RATE)  # the minimum count can pass the target
            bar.update(len(clean) / SAMPLE_RATE)
    return done


def _write_subset(root: Path, subset: str, rendered: list) -> dict:
    """Write FLAC files and SPEAKER-CHAPTER.trans.txt files of one subset (and test-noisy from test-clean)."""
    trans: dict[tuple[str, int, int], list[str]] = defaultdict(list)
    noise_rows, aug_rows, seconds = [], [], 0.0
    for job, clean, noisy in rendered:
        spk, chap, uid = utterance_id(job)
        names = [(subset, clean)] + ([("test-noisy", noisy)] if noisy is not None else [])
        for name, audio in names:
            write_audio(root / name / str(spk) / str(chap) / f"{uid}.flac", audio)
            trans[(name, spk, chap)].append(f"{uid} {job.text}")
        seconds += len(clean) / SAMPLE_RATE
        if noisy is not None:
            noise_rows.append([uid, job.snr_db, job.noise])
        if subset == "train":
            aug_rows.append([uid, " ".join(job.effects), job.noise, job.snr_db if job.noise else ""])
    for (name, spk, chap), lines in trans.items():
        (root / name / str(spk) / str(chap) / f"{spk}-{chap}.trans.txt").write_text("\n".join(sorted(lines)) + "\n")
    if noise_rows:
        write_csv(root / "test-noisy" / "noise.csv", ["utterance_id", "snr_db", "noise"], noise_rows)
    if aug_rows:
        write_csv(root / "train" / "augment.csv", ["utterance_id", "sox_effects", "noise", "snr_db"], aug_rows)
    speakers = sorted({spk for (name, spk, _) in trans if name == subset})
    return {"utterances": len(rendered), "minutes": round(seconds / 60, 2), "speakers": speakers}


def _write_speakers(root: Path, summary: dict) -> None:
    """SPEAKERS.TXT in LibriSpeech's format (ID | SEX | SUBSET | MINUTES | NAME)."""
    lines = [";ID  |SEX| SUBSET           |MINUTES| NAME"]
    for subset, info in summary.items():
        for spk in info["speakers"]:
            v = next(v for v in V.VOICES if v.speaker_id == spk)
            lines.append(f"{spk:<5}| {v.sex} | {subset:<17}| {'':>5} | {v.name}")
    (root / "SPEAKERS.TXT").write_text("\n".join(lines) + "\n")


def generate_speech(out: Path, cfg: SpeechSynthConfig, progress: bool = True) -> dict:
    """Generate the speech set into `out`; returns the summary also written to `out/synth_manifest.json`."""
    if not cfg.minutes > 0:
        raise DataError(f"--minutes must be above 0, got {cfg.minutes}")
    if cfg.workers < 1:
        raise DataError(f"--workers must be at least 1, got {cfg.workers}")
    if not cfg.subsets or set(cfg.subsets) - set(SUBSET_SHARES):
        raise DataError(f"--subsets {','.join(cfg.subsets)}: allowed are {', '.join(SUBSET_SHARES)} "
                        "(test-noisy is made with test-clean)")
    V.check_tools()
    text.sentences(), N.opensfx_recordings()  # load once in the parent so forked workers share them
    tmp = prepare_out(Path(out).resolve(), MARKER, {*SUBSET_SHARES, "test-noisy", "SPEAKERS.TXT", MARKER})
    summary = {}
    ctx = multiprocessing.get_context("fork")
    total = round(cfg.minutes * 60 * sum(SUBSET_SHARES[s] for s in cfg.subsets))
    with ctx.Pool(cfg.workers) as pool, tqdm(total=total, unit="s audio", disable=not progress, desc="synth-speech",
                                             bar_format="{l_bar}{bar}| {n:.0f}/{total} s audio") as bar:
        for subset, share in SUBSET_SHARES.items():
            if subset not in cfg.subsets:
                continue
            min_utts = len(V.voices_for(_VOICE_POOL[subset]))
            rendered = _render_subset(subset, cfg.minutes * 60 * share, min_utts, cfg, pool, bar)
            summary[subset] = _write_subset(tmp, subset, rendered)
    if "test-clean" in summary:
        summary["test-noisy"] = {**summary["test-clean"], "snr_db": list(TEST_SNRS_DB)}
    _write_speakers(tmp, summary)
    manifest = {"generator": "acom data synth-speech", "format": "LibriSpeech", "config": asdict(cfg),
                "sample_rate": SAMPLE_RATE, "subsets": summary,
                "voices": {v.speaker_id: v.name for v in V.VOICES},
                "noise_sources": {s: N.opensfx_recordings()[int(s.split(':')[1])].title if s.startswith("opensfx")
                                  else s for s in _noise_pool("train") + _noise_pool("test")}}
    (tmp / MARKER).write_text(json.dumps(manifest, indent=1))
    finish_out(tmp, Path(out).resolve())
    return manifest
