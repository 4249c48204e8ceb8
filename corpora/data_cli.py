"""`acom data`: generate the embedded default data sets, or summarize a data set on disk."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

from acom.corpora import datasets as D
from acom.errors import DataError

LIBRISPEECH_SUBSETS = ("train", "dev", "test-clean", "test-noisy", "train-clean-100", "train-clean-360",
                       "train-other-500", "dev-clean", "dev-other", "test-other")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="acom data", description=__doc__)
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    s = sub.add_parser("synth-speech", help="speech in LibriSpeech's layout from Debian's TTS engines",
                       description="Generate train/dev/test-clean/test-noisy in LibriSpeech's layout: TTS voices "
                       "(flite, festival, espeak-ng) reading King James Bible sentences; train augmented with sox "
                       "and noise; test voices and sentences never in train; test-noisy at 0/5/10/20 dB SNR.")
    s.add_argument("--minutes", type=float, default=10.0, help="minutes of clean speech in train+dev+test-clean")
    s.add_argument("--subsets", default="train,dev,test-clean",
                   help="subsets to make (test-noisy comes with test-clean); each is the same whatever else is made")
    _generator_options(s)

    u = sub.add_parser("synth-urban", help="sound clips in UrbanSound8K's layout, synthesized procedurally",
                       description="Generate the 10 UrbanSound8K classes procedurally (random parameters per clip), "
                       "mixed over real recordings at random SNR, in UrbanSound8K's layout (metadata CSV, 10 folds).")
    u.add_argument("--clips-per-class", type=int, default=100, help="clips of each of the 10 classes")
    u.add_argument("--folds", default=None, help="only these folds, e.g. 10 (each clip as in the whole set)")
    _generator_options(u)

    m = sub.add_parser("summary", help="count what a LibriSpeech- or UrbanSound8K-layout folder holds",
                       description="Detect the layout of each folder and count utterances, minutes, speakers "
                       "(LibriSpeech) or clips per class and fold (UrbanSound8K).")
    m.add_argument("paths", type=Path, nargs="+", help="data set folders")
    m.add_argument("--json", action="store_true", help="print JSON")
    return p


def _generator_options(p: argparse.ArgumentParser) -> None:
    """Options every generator shares."""
    p.add_argument("--out", type=Path, required=True, help="output folder (created; replaced if it holds a set)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, identical files")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="parallel processes (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(argv: list[str]) -> int:
    ns = _parser().parse_args(argv)
    if ns.action == "synth-speech":
        from acom.corpora.synth.speech import SpeechSynthConfig, generate_speech
        cfg = SpeechSynthConfig(minutes=ns.minutes, seed=ns.seed, workers=ns.workers,
                                subsets=tuple(s.strip() for s in ns.subsets.split(",") if s.strip()))
        result = generate_speech(ns.out, cfg, progress=not ns.no_progress)
        result = {"out": str(ns.out), **{k: result[k] for k in ("config", "subsets")}}
    elif ns.action == "synth-urban":
        from acom.corpora.synth.urban import generate_urban
        result = generate_urban(ns.out, clips_per_class=ns.clips_per_class, seed=ns.seed, workers=ns.workers,
                                progress=not ns.no_progress,
                                folds=tuple(int(f) for f in ns.folds.split(",")) if ns.folds else None)
    else:
        result = {str(p): summarize(p) for p in ns.paths}
    if ns.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        _print_human(result)
    return 0


def summarize(path: Path) -> dict:
    """Counts of a data set folder in LibriSpeech or UrbanSound8K layout (reads metadata, not audio)."""
    if not path.is_dir():
        raise DataError(f"{path}: no such folder")
    if (path / "metadata" / "UrbanSound8K.csv").is_file():
        ds = D.UrbanSound8K(path, range(1, 11))
        return {"format": "UrbanSound8K", "clips": len(ds),
                "per_class": dict(sorted(Counter(c.class_name for c in ds.items).items())),
                "per_fold": dict(sorted(Counter(c.fold for c in ds.items).items()))}
    subsets = [s for s in LIBRISPEECH_SUBSETS if (path / s).is_dir()]
    if not subsets:
        raise DataError(f"{path}: neither UrbanSound8K (metadata/UrbanSound8K.csv) nor LibriSpeech "
                        f"(one of the subsets {', '.join(LIBRISPEECH_SUBSETS)})")
    out: dict = {"format": "LibriSpeech"}
    for s in subsets:
        ds = D.LibriSpeech(path, s)
        seconds = sum(_flac_seconds(u.path) for u in ds.items)
        out[s] = {"utterances": len(ds), "minutes": round(seconds / 60, 2),
                  "speakers": len({u.speaker_id for u in ds.items})}
    return out


def _flac_seconds(path: Path) -> float:
    import soundfile as sf
    info = sf.info(str(path))
    return info.frames / info.samplerate


def _print_human(result: dict) -> None:
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")
    sys.stdout.flush()
