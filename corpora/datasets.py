"""Loaders for the real data sets' on-disk formats (and so for the generated ones), and for a user's folder.

- `LibriSpeech(root, subset)`: `root/subset/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac` + `SPEAKER-CHAPTER.trans.txt`.
- `UrbanSound8K(root, folds)`: `root/metadata/UrbanSound8K.csv` + `root/audio/foldN/<slice_file_name>`.
- `AudioFolder(root)`: `root/metadata.csv` with a `file` column and a `transcript` or a `label` column.

Each is a sequence of (audio float32 [N] at 16 kHz, item). Problems are `DataError`s naming the file and
what was expected; with `strict=False` a bad entry is skipped instead and counted in `.skipped`, never
dropped silently.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from acom.core.audio import SAMPLE_RATE, LoadStats, load_audio
from acom.errors import DataError

US8K_COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
US8K_CLASSES = ("air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling", "engine_idling",
                "gun_shot", "jackhammer", "siren", "street_music")
_TRANSCRIPT = re.compile(r"^[A-Z' ]+$")


@dataclass(frozen=True)
class Utterance:
    """One transcribed utterance."""

    utterance_id: str
    path: Path
    transcript: str
    speaker_id: str
    chapter_id: str


@dataclass(frozen=True)
class Clip:
    """One labelled clip."""

    clip_id: str
    path: Path
    label: int
    class_name: str
    fold: int


T = TypeVar("T", Utterance, Clip)


class _AudioDataset(Generic[T]):
    """A list of items whose audio is read on access; `skipped` counts what strict=False left out."""

    def __init__(self, items: list[T], skipped: LoadStats, sample_rate: int, where: str) -> None:
        if not items:
            raise DataError(f"{where}: the data set is empty ({skipped.summary()})")
        self.items, self.skipped, self.sample_rate = items, skipped, sample_rate
        self.converted = LoadStats()  # files resampled or downmixed while reading

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[np.ndarray, T]:
        item = self.items[i]
        return load_audio(item.path, self.sample_rate, self.converted), item


def _problem(strict: bool, skipped: LoadStats, message: str, reason: str) -> None:
    """Raise DataError(message) when strict, else count `reason` as skipped."""
    if strict:
        raise DataError(message)
    skipped[f"skipped: {reason}"] += 1


class LibriSpeech(_AudioDataset[Utterance]):
    """LibriSpeech subsets such as `train-clean-100` or the generated `train`, `dev`, `test-clean`, `test-noisy`;
    a list of subsets reads them one after another (LibriSpeech's training subsets joined)."""

    def __init__(self, root: str | Path, subset: str | list[str], *, sample_rate: int = SAMPLE_RATE,
                 strict: bool = True):
        root = Path(root)
        skipped = LoadStats()
        items: list[Utterance] = []
        names = [subset] if isinstance(subset, str) else list(subset)
        for name in names:
            folder = root / name
            if not folder.is_dir():
                have = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
                raise DataError(f"{folder}: no such LibriSpeech subset; subsets under {root}: {have or 'none'}")
            found = []
            for trans in sorted(folder.glob("*/*/*.trans.txt")):
                found += _read_transcripts(trans, strict, skipped)
            listed = {u.path for u in found}
            for flac in sorted(folder.glob("*/*/*.flac")):
                if flac not in listed:
                    _problem(strict, skipped, f"{flac}: audio file has no line in {flac.parent.name}'s .trans.txt",
                             "audio without transcript")
            items += found
        super().__init__(items, skipped, sample_rate, " + ".join(str(root / n) for n in names))


def _read_transcripts(trans: Path, strict: bool, skipped: LoadStats) -> list[Utterance]:
    """The utterances listed in one SPEAKER-CHAPTER.trans.txt (lines 'SPEAKER-CHAPTER-UTT TRANSCRIPT')."""
    speaker, chapter = trans.parent.parent.name, trans.parent.name
    out = []
    for n, line in enumerate(trans.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        uid, _, text = line.strip().partition(" ")
        where = f"{trans}:{n}"
        if not uid.startswith(f"{speaker}-{chapter}-"):
            _problem(strict, skipped, f"{where}: utterance id {uid!r} should start with '{speaker}-{chapter}-'",
                     "bad utterance id")
        elif not text.strip():
            _problem(strict, skipped, f"{where}: empty transcript for {uid}", "empty transcript")
        elif not _TRANSCRIPT.match(text.strip()):
            _problem(strict, skipped, f"{where}: transcript of {uid} has characters other than A-Z, ' and space",
                     "bad transcript characters")
        elif not (trans.parent / f"{uid}.flac").is_file():
            _problem(strict, skipped, f"{where}: {uid}.flac is missing", "missing audio")
        else:
            out.append(Utterance(uid, trans.parent / f"{uid}.flac", " ".join(text.split()), speaker, chapter))
    return out


class UrbanSound8K(_AudioDataset[Clip]):
    """UrbanSound8K clips of the given folds (1..10), with their class ids 0..9."""

    def __init__(self, root: str | Path, folds: list[int] | tuple[int, ...] | range, *,
                 sample_rate: int = SAMPLE_RATE, strict: bool = True):
        root = Path(root)
        bad = [f for f in folds if f not in range(1, 11)]
        if bad or not folds:
            raise DataError(f"UrbanSound8K folds must be among 1..10, got {list(folds)}")
        meta = root / "metadata" / "UrbanSound8K.csv"
        _, rows = read_csv(meta, US8K_COLUMNS)
        skipped = LoadStats()
        items = []
        for n, row in enumerate(rows, 2):
            clip = _us8k_clip(root, meta, n, row, strict, skipped)
            if clip is not None and clip.fold in folds:
                items.append(clip)
        super().__init__(items, skipped, sample_rate, f"{meta} folds {list(folds)}")


def _us8k_clip(root: Path, meta: Path, n: int, row: dict, strict: bool, skipped: LoadStats) -> Clip | None:
    """Check one CSV row (line n) and make its Clip, or report the problem."""
    where = f"{meta}:{n}"
    try:
        fold, label = int(row["fold"]), int(row["classID"])
    except ValueError:
        _problem(strict, skipped, f"{where}: fold and classID must be integers, got {row['fold']!r}, "
                 f"{row['classID']!r}", "bad fold or classID")
        return None
    if fold not in range(1, 11) or label not in range(10):
        _problem(strict, skipped, f"{where}: fold must be 1..10 and classID 0..9, got {fold} and {label}",
                 "fold or classID out of range")
        return None
    if row["class"] != US8K_CLASSES[label]:
        _problem(strict, skipped, f"{where}: class {row['class']!r} does not match classID {label} "
                 f"({US8K_CLASSES[label]})", "class name mismatch")
        return None
    path = root / "audio" / f"fold{fold}" / row["slice_file_name"]
    if not path.is_file():
        _problem(strict, skipped, f"{where}: {path} is missing", "missing audio")
        return None
    return Clip(Path(row["slice_file_name"]).stem, path, label, row["class"], fold)


def read_csv(path: Path, required: tuple[str, ...] | list[str]) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV file that must hold the `required` columns; DataError names what is missing."""
    if not path.is_file():
        raise DataError(f"{path}: CSV file not found")
    with path.open(newline="", errors="replace") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{path}: missing columns {missing}; expected at least {list(required)}, "
                            f"found {header}")
        return header, list(reader)


class AudioFolder(_AudioDataset):
    """A user's folder of audio files with `metadata.csv`: `file` plus `transcript` (ASR) or `label` (classes).

    Labels may be any strings; `class_names` lists them sorted and `Clip.label` indexes that list.
    """

    def __init__(self, root: str | Path, *, csv_name: str = "metadata.csv", sample_rate: int = SAMPLE_RATE,
                 strict: bool = True):
        root = Path(root)
        meta = root / csv_name
        header, rows = read_csv(meta, ["file"])
        task = "transcript" if "transcript" in header else "label" if "label" in header else None
        if task is None:
            raise DataError(f"{meta}: needs a 'transcript' column (speech) or a 'label' column (classes)")
        self.task = "asr" if task == "transcript" else "classification"
        self.class_names = sorted({r["label"] for r in rows if r["label"].strip()}) if task == "label" else []
        skipped, items = LoadStats(), []
        for n, row in enumerate(rows, 2):
            path, value = root / row["file"], (row[task] or "").strip()
            if not path.is_file():
                _problem(strict, skipped, f"{meta}:{n}: {path} is missing", "missing audio")
            elif not value:
                _problem(strict, skipped, f"{meta}:{n}: empty {task} for {row['file']}", f"empty {task}")
            elif task == "transcript":
                items.append(Utterance(path.stem, path, " ".join(value.upper().split()), "", ""))
            else:
                items.append(Clip(path.stem, path, self.class_names.index(value), value, 0))
        super().__init__(items, skipped, sample_rate, str(meta))
