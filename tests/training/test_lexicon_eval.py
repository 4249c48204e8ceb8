"""`acom eval --beam N --lexicon` and the rate-accuracy decoder beam+lm+lex on the shipped ASR model."""

from __future__ import annotations

import json

import pytest
import torch

from acom.comparisons.rate_accuracy import _decoders
from acom.core.checkpoint import PRETRAINED, load_checkpoint
from acom.corpora.featcache import cached_features
from acom.errors import DataError
from acom.training.decoding import WordNgramLM
from acom.training.train_cli import eval_main, evaluate_checkpoint

SPLIT = PRETRAINED / "asr" / "split.pt"


def test_lexicon_search_spells_only_training_words(speech_set, tmp_path) -> None:
    """Unseen voices: the open search spells some words the LM never saw, the lexicon search none."""
    split, payload = load_checkpoint(SPLIT, "asr")
    lex = WordNgramLM.from_dict(json.loads(payload["lm"])).lexicon
    # the cache outside the shared set: other tests compare its files with a fresh synthesis
    fs = cached_features("asr", "test-clean", 40, root=speech_set, cache=tmp_path, progress=False)
    for rows, closed in ((evaluate_checkpoint(split, payload, fs, beam=16, lexicon=True), True),
                         (evaluate_checkpoint(split, payload, fs, beam=16), False)):
        words = {w for r in rows for _, hyp in r["examples"] for w in hyp.split()}
        assert words, "the model spelled nothing: the check would be empty"
        assert (words <= lex) is closed, words - lex


def test_lexicon_without_beam_or_lm_is_refused(tmp_path) -> None:
    with pytest.raises(DataError, match="give --beam N"):
        eval_main(["--task", "asr", "--checkpoint", str(SPLIT), "--lexicon"])
    payload = torch.load(SPLIT, map_location="cpu", weights_only=True)
    del payload["lm"]
    no_lm = tmp_path / "split.pt"
    torch.save(payload, no_lm)
    with pytest.raises(DataError, match="no word LM stored"):
        eval_main(["--task", "asr", "--checkpoint", str(no_lm), "--beam", "8", "--lexicon"])


def test_rate_accuracy_decoders() -> None:
    assert [d.name for d in _decoders("asr")] == ["greedy", "beam+lm"]
    lex = _decoders("asr", lexicon=True)[-1]
    assert (lex.name, lex.beam, lex.lexicon) == ("beam+lm+lex", 64, True)
    assert [d.name for d in _decoders("ac", lexicon=True)] == ["argmax"]
