"""Split names as users give them, resolved against the data folder as it is (nothing renamed, nothing written).

Speech (LibriSpeech layout): any subset folder by its own name (``train-clean-100``, ``dev-clean``,
``test-other``, the generated ``train``/``dev``/``test-clean``/``test-noisy``), several joined with ``+``
(``train-clean-100+train-clean-360``), and the roles ``train`` (every LibriSpeech training subset present:
train-clean-100, train-clean-360, train-other-500), ``dev`` (dev-clean) and ``test`` (test-clean) when the
folder has no subset of that name.

Sound classes (UrbanSound8K layout): the paper's split ``train`` (folds 1-8), ``dev`` (9), ``test`` (10);
folds by number, ``fold3``, ``folds1-8``, ``folds1,2,5``; and 10-fold cross-validation as UrbanSound8K's
authors ask for comparable numbers, ``cvK-train``/``cvK-dev``/``cvK-test``: test on fold K, validate on the
next fold (10 -> 1), train on the other eight.
"""

from __future__ import annotations

import re
from pathlib import Path

from acom.errors import DataError

LIBRISPEECH_TRAIN = ("train-clean-100", "train-clean-360", "train-other-500")
LIBRISPEECH_ROLES = {"train": LIBRISPEECH_TRAIN, "dev": ("dev-clean",), "test": ("test-clean",)}
US8K_PAPER = {"train": list(range(1, 9)), "dev": [9], "test": [10]}
_FOLDS = re.compile(r"^folds?(\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*)$")
_CV = re.compile(r"^cv(\d+)-(train|dev|test)$")


def speech_subsets(root: Path, name: str) -> list[str]:
    """The subset folders under ``root`` that split ``name`` means (DataError naming what exists)."""
    have = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    out: list[str] = []
    for part in name.split("+"):
        if part in have:
            out.append(part)
        elif part in LIBRISPEECH_ROLES and any(s in have for s in LIBRISPEECH_ROLES[part]):
            out += [s for s in LIBRISPEECH_ROLES[part] if s in have]
        else:
            raise DataError(f"{root}: no speech subset {part!r}; subsets there: {', '.join(have) or 'none'} (or "
                            f"the roles train, dev, test; join several with +)")
    return out


def us8k_folds(name: str) -> list[int]:
    """The UrbanSound8K folds that split ``name`` means (DataError listing the accepted forms)."""
    if name in US8K_PAPER:
        return US8K_PAPER[name]
    cv = _CV.match(name)
    if cv and 1 <= int(cv.group(1)) <= 10:
        k = int(cv.group(1))
        nxt = k % 10 + 1
        return {"test": [k], "dev": [nxt], "train": [f for f in range(1, 11) if f not in (k, nxt)]}[cv.group(2)]
    m = _FOLDS.match(name)
    if m:
        folds: list[int] = []
        for part in m.group(1).split(","):
            lo, _, hi = part.partition("-")
            folds += range(int(lo), int(hi or lo) + 1)
        if folds and all(1 <= f <= 10 for f in folds):
            return sorted(set(folds))
    raise DataError(f"UrbanSound8K split {name!r}: expected train, dev, test (the paper's folds 1-8, 9, 10), "
                    f"fold3, folds1-8, folds1,2,5, or cv1-train .. cv10-test (10-fold cross-validation)")


def cv_names(fold: int) -> dict[str, str]:
    """The split names of cross-validation fold ``fold`` (1..10): {"train": "cvK-train", ...}."""
    if not 1 <= fold <= 10:
        raise DataError(f"--fold {fold}: UrbanSound8K has folds 1..10")
    return {role: f"cv{fold}-{role}" for role in ("train", "dev", "test")}
