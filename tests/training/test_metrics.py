"""WER/CER and classification metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from acom.errors import DataError
from acom.training.metrics import classification_metrics, wer_cer


def test_wer_cer_single_pair():
    out = wer_cer(["A B C D"], ["A X C"])  # B->X substituted, D deleted
    assert (out["substitutions"], out["deletions"], out["insertions"], out["hits"]) == (1, 1, 0, 2)
    assert out["ref_words"] == 4
    assert out["wer"] == pytest.approx(0.5)
    assert out["cer"] == pytest.approx(3 / 7)  # "A B C D" vs "A X C": B->X, " D" deleted


def test_wer_cer_is_corpus_level():
    refs = ["A B C D", "HELLO WORLD", "GOOD"]
    hyps = ["A X C", "HELLO WORLD TOO", "GOOD"]
    out = wer_cer(refs, hyps)
    assert (out["substitutions"], out["deletions"], out["insertions"]) == (1, 1, 1)
    assert out["ref_words"] == 7 and out["utterances"] == 3
    assert out["wer"] == pytest.approx(3 / 7)  # not the mean of per-utterance rates (1/3)
    assert out["cer"] == pytest.approx((3 + 4) / (7 + 11 + 4))


def test_wer_cer_empty_hypothesis_is_all_deletions():
    out = wer_cer(["A B"], [""])
    assert out["wer"] == 1.0 and out["deletions"] == 2


@pytest.mark.parametrize(
    "refs, hyps, match",
    [
        (["A"], ["A", "B"], "one hypothesis per reference"),
        (["A", " "], ["A", "B"], "reference 1 is empty"),
        ([], [], "at least one"),
    ],
)
def test_wer_cer_rejects_bad_input(refs, hyps, match):
    with pytest.raises(DataError, match=match):
        wer_cer(refs, hyps)


def test_classification_hand_computed():
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 2, 2, 2, 0, 3]
    out = classification_metrics(y_true, y_pred, num_classes=5, class_names=["a", "b", "c", "d", "e"])
    assert out["confusion"] == [
        [2, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [1, 0, 2, 1, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]
    assert out["accuracy"] == pytest.approx(5 / 9)
    pc = out["per_class"]
    assert (pc["a"]["precision"], pc["a"]["recall"], pc["a"]["f1"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert (pc["c"]["precision"], pc["c"]["recall"], pc["c"]["f1"]) == pytest.approx((2 / 3, 1 / 2, 4 / 7))
    assert pc["c"]["support"] == 4
    assert (pc["d"]["precision"], pc["d"]["recall"], pc["d"]["f1"]) == (0.0, 0.0, 0.0)  # predicted, never true
    assert pc["e"]["f1"] is None  # in neither truth nor prediction: excluded from the mean
    assert out["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 4 / 7 + 0) / 4)


def test_classification_perfect_and_default_names():
    out = classification_metrics(np.array([2, 0, 1]), np.array([2, 0, 1]), num_classes=3)
    assert out["accuracy"] == 1.0 and out["macro_f1"] == 1.0
    assert sorted(out["per_class"]) == ["0", "1", "2"]
    assert out["confusion"] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


@pytest.mark.parametrize(
    "y_true, y_pred, kwargs, match",
    [
        ([0, 1], [0], {}, "equal length"),
        ([0, 3], [0, 1], {}, "outside 0..2"),
        ([0, 1], [0, -1], {}, "outside 0..2"),
        ([0.0, 1.0], [0, 1], {}, "integer"),
        ([], [], {}, "at least one"),
        ([0, 1], [0, 1], {"class_names": ["x"]}, "expected num_classes=3"),
    ],
)
def test_classification_rejects_bad_input(y_true, y_pred, kwargs, match):
    with pytest.raises(DataError, match=match):
        classification_metrics(y_true, y_pred, num_classes=3, **kwargs)
