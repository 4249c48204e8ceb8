"""Precomputed log-mel features: compute once (here, where the data is), train anywhere (a GPU machine
without the TTS tools). One safetensors file per subset: all frames in one float16 tensor plus offsets.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from acom.core.features import FrontEndConfig, LogMel
from acom.core.tasks import get_task
from acom.corpora import datasets as D
from acom.corpora.splits import speech_subsets, us8k_folds
from acom.errors import DataError

FORMAT = "acom-features/1"


@dataclass
class FeatureSet:
    """Log-mels [n_mels, T_i] (float16) of a subset with their targets (transcripts or class ids)."""

    task: str  # 'asr' or 'ac'
    feats: list[torch.Tensor]
    targets: list  # str transcripts (asr) or int labels (ac)
    ids: list[str]
    n_mels: int
    source_key: str = ""  # hash of the audio files they came from (to notice a changed data set)

    def __len__(self) -> int:
        return len(self.feats)

    def save(self, path: Path) -> None:
        offsets = torch.tensor([0] + [f.shape[1] for f in self.feats]).cumsum(0)
        meta = {"format": FORMAT, "task": self.task, "n_mels": str(self.n_mels),
                "targets": json.dumps(self.targets), "ids": json.dumps(self.ids), "source_key": self.source_key}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file({"feats": torch.cat(self.feats, dim=1).contiguous(), "offsets": offsets}, str(tmp), metadata=meta)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "FeatureSet":
        from safetensors import safe_open
        if not Path(path).is_file():
            raise DataError(f"{path}: feature file not found (make one with `acom features`)")
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise DataError(f"{path}: not an acom feature file (format {meta.get('format')!r}, expected {FORMAT})")
        t = load_file(str(path))
        off = t["offsets"].tolist()
        feats = [t["feats"][:, off[i]:off[i + 1]] for i in range(len(off) - 1)]
        return cls(meta["task"], feats, json.loads(meta["targets"]), json.loads(meta["ids"]), int(meta["n_mels"]),
                   meta.get("source_key", ""))


@dataclass(frozen=True)
class Loader:
    """How a task's data are read: the split names of its default layout, and the loader of a split name
    (corpora/splits.py: a data set's own subset names, roles, folds)."""

    subsets: tuple[str, ...]
    open: Callable[[Path, str], object]
    layout: str  # the real data set whose folder layout it reads
    demo_command: str  # the command that makes the small synthetic demo set in that layout at {root}


# the data set loader of each task in acom.core.tasks.TASKS (the model core cannot import the data sets)
LOADERS: dict[str, Loader] = {
    "asr": Loader(("train", "dev", "test-clean", "test-noisy"),
                  lambda root, name: D.LibriSpeech(root, speech_subsets(root, name)), "LibriSpeech",
                  "acom data synth-speech --out {root} --minutes 5 --seed 0"),
    # UrbanSound8K's standard split for the paper recipe: train folds 1-8, validate on 9, test on 10
    "ac": Loader(("train", "dev", "test"), lambda root, name: D.UrbanSound8K(root, us8k_folds(name)), "UrbanSound8K",
                 "acom data synth-urban --out {root} --clips-per-class 20 --seed 0"),
}


def subsets_for(task: str) -> tuple[str, ...]:
    """The split names of each task's default data layout (the generated sets'; real ones: corpora/splits.py)."""
    return LOADERS[get_task(task).name].subsets


def open_dataset(task: str, root: Path, split: str):
    """The loader of split `split` (a subset's own name, a role, folds: corpora/splits.py) for `task` on a
    LibriSpeech- or UrbanSound8K-layout folder."""
    return LOADERS[get_task(task).name].open(Path(root), split)


def default_cache(root: Path) -> Path:
    """Where features of the data folder `root` are kept by default: never inside the data (a corpus may be
    read-only), but in $ACOM_FEATURES, else the features folder of acom's cache ($ACOM_CACHE, else
    $XDG_CACHE_HOME/acom, else ~/.cache/acom); one folder per data folder (its name and a hash of its path)."""
    base = os.environ.get("ACOM_FEATURES")
    if not base:
        home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "acom"
        base = Path(os.environ.get("ACOM_CACHE") or home) / "features"
    where = Path(root).resolve()
    return Path(base) / f"{where.name}-{hashlib.sha256(str(where).encode()).hexdigest()[:10]}"


@torch.no_grad()
def compute_features(task: str, dataset, n_mels: int, progress: bool = True) -> FeatureSet:
    """Log-mels of every item of a loader (LibriSpeech, UrbanSound8K or AudioFolder)."""
    frontend = LogMel(FrontEndConfig(n_mels=n_mels))
    feats, targets, ids = [], [], []
    for i in tqdm(range(len(dataset)), desc="features", unit="file", disable=not progress):
        audio, item = dataset[i]
        if len(audio) < frontend.cfg.win_length:
            audio = torch.nn.functional.pad(torch.from_numpy(audio), (0, frontend.cfg.win_length - len(audio)))
        feats.append(frontend(torch.as_tensor(audio)[None])[0].to(torch.float16))
        targets.append(get_task(task).target(item))
        ids.append(getattr(item, "utterance_id", None) or item.clip_id)
    return FeatureSet(task, feats, targets, ids, n_mels)


def feature_path(cache: Path, task: str, split: str, n_mels: int) -> Path:
    return cache / f"{task}-{split.replace('/', '_')}-{n_mels}.safetensors"


def cached_features(task: str, split: str, n_mels: int, *, root: Path | None = None, cache: Path | None = None,
                    progress: bool = True) -> FeatureSet:
    """Features of `split`: from the cache folder (default: ``default_cache(ROOT)``) when they match the data
    set, else computed from ROOT and saved there. Without ROOT (a machine with features but no audio) the cache
    is read as it is.

    The match is a hash of the subset's file names and sizes, so a changed data set is recomputed.
    """
    if root is None and cache is None:
        raise DataError("give a data folder (--data) or a feature folder (--features)")
    cache = cache or default_cache(root)
    path = feature_path(cache, task, split, n_mels)
    if root is None:
        return FeatureSet.load(path)
    ds = open_dataset(task, root, split)
    listing = "\n".join(f"{it.path.name} {it.path.stat().st_size}" for it in ds.items)
    key = hashlib.sha256(listing.encode()).hexdigest()[:16]
    if path.is_file():
        fs = FeatureSet.load(path)
        if fs.source_key == key:
            return fs
    fs = compute_features(task, ds, n_mels, progress)
    fs.source_key = key
    fs.save(path)
    return fs
