"""Task metrics: word/character error rate for ASR, accuracy and macro-F1 for sound classification.

Both return plain dicts of numbers so they can go straight into JSON reports and the rate-accuracy
benchmark. Error rates are corpus-level (errors summed over utterances, divided by the summed reference
length), not an average of per-utterance rates, which would over-weight short utterances.
"""

from __future__ import annotations

from collections.abc import Sequence

import jiwer
import numpy as np

from acom.errors import DataError

__all__ = ["classification_metrics", "wer_cer"]


def wer_cer(refs: list[str], hyps: list[str]) -> dict:
    """Corpus WER and CER (fractions, may exceed 1 with insertions) and the word edit counts.

    Returns ``wer``, ``cer``, ``substitutions``, ``deletions``, ``insertions``, ``hits`` and
    ``ref_words`` (all counts over the corpus), and ``utterances``. An empty hypothesis is allowed
    (all deletions); an empty reference is not, since its error rate is undefined.
    """
    if len(refs) != len(hyps):
        raise DataError(f"wer_cer needs one hypothesis per reference, got {len(refs)} refs and {len(hyps)} hyps")
    if not refs:
        raise DataError("wer_cer needs at least one reference")
    for i, ref in enumerate(refs):
        if not ref.strip():
            raise DataError(f"reference {i} is empty; every reference must contain at least one word")
    words = jiwer.process_words(refs, hyps)
    return {
        "wer": float(jiwer.wer(refs, hyps)),
        "cer": float(jiwer.cer(refs, hyps)),
        "substitutions": int(words.substitutions),
        "deletions": int(words.deletions),
        "insertions": int(words.insertions),
        "hits": int(words.hits),
        "ref_words": int(words.hits + words.substitutions + words.deletions),
        "utterances": len(refs),
    }


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    num_classes: int,
    class_names: Sequence[str] | None = None,
) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix of integer labels.

    ``y_true`` and ``y_pred`` are [N] class indices in ``0..num_classes-1``. ``confusion[i][j]`` counts
    clips of true class i predicted as j. Precision (recall) is 0 for a class never predicted (never
    present) while the other side is not empty. A class absent from both truth and prediction has no
    meaningful F1: its per-class values are None and it is left out of ``macro_f1``, so evaluating on a
    subset (one fold of UrbanSound8K, say) does not drag the mean down with classes it never contains.
    ``per_class`` maps each class name (``class_names`` or the index as a string) to
    ``precision``, ``recall``, ``f1`` and ``support`` (true count).
    """
    truth, pred = _check_labels(y_true, y_pred, num_classes)
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise DataError(f"class_names has {len(class_names)} names, expected num_classes={num_classes}")
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (truth, pred), 1)
    tp = np.diag(confusion)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    per_class, f1s = {}, []
    for c, name in enumerate(class_names):
        if support[c] == 0 and predicted[c] == 0:
            per_class[name] = {"precision": None, "recall": None, "f1": None, "support": 0}
            continue
        precision = tp[c] / predicted[c] if predicted[c] else 0.0
        recall = tp[c] / support[c] if support[c] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(support[c]),
        }
        f1s.append(float(f1))
    return {
        "accuracy": float(tp.sum() / len(truth)),
        "macro_f1": float(np.mean(f1s)),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def _check_labels(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Both label arrays as int64 [N]; DataError naming the problem otherwise."""
    if num_classes < 1:
        raise DataError(f"num_classes must be >= 1, got {num_classes}")
    truth, pred = np.asarray(y_true), np.asarray(y_pred)
    if truth.ndim != 1 or truth.shape != pred.shape:
        raise DataError(f"y_true and y_pred must be [N] of equal length, got {truth.shape} and {pred.shape}")
    if truth.size == 0:
        raise DataError("classification_metrics needs at least one label")
    for name, arr in (("y_true", truth), ("y_pred", pred)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() >= num_classes:
            raise DataError(f"{name} has labels outside 0..{num_classes - 1}: min {arr.min()}, max {arr.max()}")
    return truth.astype(np.int64), pred.astype(np.int64)
