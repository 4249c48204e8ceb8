"""CTC decoding and the word LM: hand-built log-prob matrices, brute force over alignments, LM sums."""

from __future__ import annotations

import itertools
import json
import math
import re
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from acom.core.ctc import CharVocab, ctc_greedy, ctc_greedy_batch
from acom.errors import AcomError, DataError
from acom.training.decoding import EOS, UNK, WordNgramLM, ctc_beam_search, ctc_beam_search_many

VOCAB = CharVocab()
SENTENCES = ["THE CAT SAT ON THE MAT", "THE CAT IS BLACK", "A DOG SAT ON THE CAT", "THE DOG SAT"]


def _frames(path: str, peak: float = 0.9) -> np.ndarray:
    """[T, V] log-probs, one frame per path character ('-' = blank), ``peak`` on it, the rest spread."""
    ids = [VOCAB.blank if ch == "-" else VOCAB.encode(ch)[0] for ch in path]
    probs = np.full((len(ids), VOCAB.size), (1.0 - peak) / (VOCAB.size - 1))
    probs[np.arange(len(ids)), ids] = peak
    return np.log(probs)


def _frame(weights: dict[str, float]) -> np.ndarray:
    """One [V] log-prob frame with the given probabilities ('-' = blank), the rest tiny."""
    probs = np.full(VOCAB.size, 1e-6)
    for ch, p in weights.items():
        probs[VOCAB.blank if ch == "-" else VOCAB.encode(ch)[0]] = p
    return np.log(probs / probs.sum())


def test_vocab_layout_and_round_trip():
    assert VOCAB.size == 29 and VOCAB.blank == 0 and VOCAB.space == 1
    text = "HELLO WORLD'S " + CharVocab.SYMBOLS
    ids = VOCAB.encode(text)
    assert all(1 <= i < 29 for i in ids)
    assert VOCAB.decode(ids) == text
    assert VOCAB.decode([0, *VOCAB.encode("AB"), 0]) == "AB"  # blanks are not characters


@pytest.mark.parametrize("text, bad", [("hello", "'h'"), ("HI!", "'!'"), ("A\tB", "'\\t'")])
def test_vocab_rejects_other_characters(text, bad):
    with pytest.raises(DataError, match=re.escape(bad)):
        VOCAB.encode(text)


def test_vocab_decode_rejects_out_of_range():
    with pytest.raises(DataError, match="0..28"):
        VOCAB.decode([29])


def test_greedy_hand_built():
    assert ctc_greedy(_frames("HHE-LL-LLO"), VOCAB) == "HELLO"  # blank between the Ls keeps both
    assert ctc_greedy(_frames("HELLLO"), VOCAB) == "HELO"  # no blank: the repeat collapses
    assert ctc_greedy(_frames(" -A - B  "), VOCAB) == "A B"  # spaces tidied
    assert ctc_greedy(torch.from_numpy(_frames("HI")), VOCAB) == "HI"


def test_greedy_batch_respects_lengths():
    a, b = _frames("CAT-S"), _frames("DOG--")
    batch = np.stack([a, b])
    assert ctc_greedy_batch(batch, [4, 5], VOCAB) == ["CAT", "DOG"]
    assert ctc_greedy_batch(torch.from_numpy(batch), torch.tensor([5, 2]), VOCAB) == ["CATS", "DO"]
    with pytest.raises(AcomError):
        ctc_greedy_batch(batch, [6, 1], VOCAB)
    with pytest.raises(AcomError, match="V=29"):
        ctc_greedy(np.zeros((3, 28)), VOCAB)


@pytest.mark.parametrize("seed", range(5))
def test_beam_equals_greedy_on_peaked_input(seed):
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(list("ABCDEFG'"), size=rng.integers(1, 5))) for _ in range(3)]
    path = "-".join(" ".join(words)) + "-"
    lp = _frames(path, peak=0.95)
    assert ctc_greedy(lp, VOCAB) == " ".join(words)
    assert ctc_beam_search(lp, VOCAB) == " ".join(words)


def test_beam_sums_alignments_where_best_path_does_not():
    # Best path is blank-blank (0.36) but "A" has A-A, A-blank, blank-A: 0.16 + 0.24 + 0.24 = 0.64.
    lp = np.stack([_frame({"-": 0.6, "A": 0.4})] * 2)
    assert ctc_greedy(lp, VOCAB) == ""
    assert ctc_beam_search(lp, VOCAB, beta=0.0) == "A"


def _brute_force_best(lp: np.ndarray, symbols: str, words: set[str] | None = None) -> str:
    """Most probable tidy labelling, summing every alignment over ``symbols`` ('-' = blank); with ``words``,
    among the labellings made only of those words."""
    ids = [VOCAB.blank if ch == "-" else VOCAB.encode(ch)[0] for ch in symbols]
    totals: dict[str, float] = {}
    for path in itertools.product(ids, repeat=lp.shape[0]):
        prob = math.exp(sum(lp[t, c] for t, c in enumerate(path)))
        collapsed = [c for i, c in enumerate(path) if c != VOCAB.blank and (i == 0 or c != path[i - 1])]
        text = " ".join(VOCAB.decode(collapsed).split())
        if words is None or set(text.split()) <= words:
            totals[text] = totals.get(text, 0.0) + prob
    return max(totals, key=totals.get)


@pytest.mark.parametrize("seed", range(8))
def test_beam_matches_brute_force_labelling(seed):
    rng = np.random.default_rng(seed)
    lp = np.stack([_frame(dict(zip("-AB ", rng.dirichlet([1.0] * 4)))) for _ in range(6)])
    assert ctc_beam_search(lp, VOCAB, beam=1000, beta=0.0) == _brute_force_best(lp, "-AB ")


@pytest.mark.parametrize("seed", range(8))
def test_lexicon_beam_matches_brute_force_over_lexicon_words(seed):
    """lexicon=True with a wide beam and no LM weight: the most probable labelling spelled in lexicon words."""
    rng = np.random.default_rng(seed)
    lp = np.stack([_frame(dict(zip("-AB ", rng.dirichlet([1.0] * 4)))) for _ in range(6)])
    lm = WordNgramLM.train(["A AB", "BA B"])
    got = ctc_beam_search(lp, VOCAB, lm=lm, beam=1000, alpha=0.0, beta=0.0, lexicon=True)
    assert got == _brute_force_best(lp, "-AB ", {"A", "AB", "BA", "B"})
    assert set(got.split()) <= lm.lexicon


def test_lexicon_beam_spells_only_training_words():
    lp = _cat_or_kat()
    lm = WordNgramLM.train(SENTENCES)
    assert ctc_beam_search(lp, VOCAB, lm=lm, alpha=0.0) == "THE KAT"  # open vocabulary: the acoustics win
    assert ctc_beam_search(lp, VOCAB, lm=lm, alpha=0.0, lexicon=True) == "THE CAT"  # KAT is no training word
    with pytest.raises(AcomError, match="lexicon=True needs an LM"):
        ctc_beam_search(lp, VOCAB, lexicon=True)


def test_many_in_worker_processes_equals_one_by_one(monkeypatch):
    """Utterances shared by 2 worker processes (the LM, the lexicon and the order travel with them)."""
    import acom.training.decoding as dec
    monkeypatch.setattr(dec, "_PARALLEL_MIN_FRAMES", 0)
    rng = np.random.default_rng(0)
    utts = [np.stack([_frame(dict(zip("-ACT HE", rng.dirichlet([0.5] * 7)))) for _ in range(rng.integers(5, 30))])
            for _ in range(7)]
    lm = WordNgramLM.train(SENTENCES)
    for kw in ({"beam": 8}, {"beam": 8, "lexicon": True, "alpha": 0.7}):
        one_by_one = [ctc_beam_search(u, VOCAB, lm, **kw) for u in utts]
        assert ctc_beam_search_many(utts, VOCAB, lm, jobs=2, **kw) == one_by_one
        assert ctc_beam_search_many(utts, VOCAB, lm, jobs=1, **kw) == one_by_one
    assert len(set(one_by_one)) > 1  # distinct utterances, so a mixed-up order would show


def _reference_beam(lp: np.ndarray, symbols: str, beam: int) -> str:
    """Textbook prefix beam search: every prefix times every symbol, then sort; no LM, no shortcuts."""
    ids = {ch: VOCAB.blank if ch == "-" else VOCAB.encode(ch)[0] for ch in symbols}
    beams = {"": (0.0, -math.inf)}
    for frame in lp:
        nxt: dict[str, list[float]] = {}
        for p, (pb, pnb) in beams.items():
            total = np.logaddexp(pb, pnb)
            for ch, c in ids.items():
                moves = [(p, 0, total)] if ch == "-" or (ch == " " and not p) else []
                if ch == " " and p.endswith(" "):
                    moves = [(p, 1, total)]
                elif ch == p[-1:]:
                    moves = [(p, 1, pnb), (p + ch, 1, pb)]
                elif not moves:
                    moves = [(p + ch, 1, total)]
                for q, slot, prev in moves:
                    entry = nxt.setdefault(q, [-math.inf, -math.inf])
                    entry[slot] = np.logaddexp(entry[slot], prev + frame[c])
        beams = dict(sorted(nxt.items(), key=lambda kv: -np.logaddexp(*kv[1]))[:beam])
    finals: dict[str, float] = {}
    for p, v in beams.items():
        finals[p.strip()] = np.logaddexp(finals.get(p.strip(), -math.inf), np.logaddexp(*v))
    return max(finals, key=finals.get)


@pytest.mark.parametrize("seed", range(6))
def test_small_beam_matches_textbook_search(seed):
    # A narrow beam over many frames exercises the early cut-off of unpromising extensions.
    rng = np.random.default_rng(seed)
    lp = np.stack([_frame(dict(zip("-AB ", rng.dirichlet([0.7] * 4)))) for _ in range(25)])
    for beam in (2, 4):
        assert ctc_beam_search(lp, VOCAB, beam=beam, beta=0.0) == _reference_beam(lp, "-AB ", beam)


def _cat_or_kat() -> np.ndarray:
    rows = [_frame({ch: 0.9, "-": 0.1}) for ch in "THE "]
    rows.append(_frame({"K": 0.47, "C": 0.43, "-": 0.1}))
    rows += [_frame({ch: 0.9, "-": 0.1}) for ch in "AT"]
    return np.stack(rows)


def test_lm_resolves_ambiguous_word():
    lp = _cat_or_kat()
    assert ctc_beam_search(lp, VOCAB) == "THE KAT"  # acoustics alone prefer K
    lm = WordNgramLM.train(SENTENCES)
    assert ctc_beam_search(lp, VOCAB, lm=lm) == "THE CAT"
    assert ctc_beam_search(lp, VOCAB, lm=lm, alpha=0.0) == "THE KAT"  # the LM weight is what did it


def test_lm_hand_computed_bigram():
    lm = WordNgramLM.train(["A B", "A C"], order=2)
    # Bigram counts: <s>A 2, AB 1, AC 1, B</s> 1, C</s> 1 -> n1=4, n2=1, D2 = 4/6.
    # Continuation counts: A 1, B 1, C 1, </s> 2 -> n1=3, n2=1, D1 = 3/5; vocab of 5 with <unk>.
    d2, d1, n_vocab = 4 / 6, 3 / 5, 5
    p1_b = (1 - d1) / 5 + d1 * 4 / 5 / n_vocab
    p1_unk = d1 * 4 / 5 / n_vocab
    assert lm.score(("A",), "B") == pytest.approx(math.log((1 - d2) / 2 + d2 * 2 / 2 * p1_b), abs=1e-12)
    assert lm.score(("A",), "ZEBRA") == pytest.approx(math.log(d2 * 2 / 2 * p1_unk), abs=1e-12)
    assert lm.score(("ZEBRA",), "B") == pytest.approx(math.log(p1_b), abs=1e-12)  # unseen context backs off
    assert lm.lexicon == {"A", "B", "C"}


def _assert_normalized(lm: WordNgramLM, ctx: tuple[str, ...]) -> None:
    total = sum(math.exp(lm.score(ctx, w)) for w in lm.vocabulary)
    assert total == pytest.approx(1.0, abs=1e-6), ctx


def test_lm_sums_to_one_over_vocabulary():
    lm = WordNgramLM.train(SENTENCES)
    assert {EOS, UNK} <= lm.vocabulary
    for ctx in [(), ("THE",), ("THE", "CAT"), ("ON", "THE"), ("CAT", "ZEBRA"), ("ZEBRA", "QUAGGA"), ("A",)]:
        _assert_normalized(lm, ctx)
    assert lm.score(("THE",), "CAT") > lm.score(("THE",), "DOG") > lm.score(("THE",), "ZEBRA")
    assert lm.score(("THE",), "ZEBRA") == lm.score(("THE",), UNK) > -math.inf


@settings(max_examples=40, deadline=None)
@given(
    corpus=st.lists(st.lists(st.sampled_from("ABCDE"), min_size=1, max_size=6), min_size=1, max_size=8),
    order=st.integers(1, 4),
    ctx=st.lists(st.sampled_from("ABCDEX"), max_size=4),
)
def test_lm_normalized_for_any_corpus(corpus, order, ctx):
    lm = WordNgramLM.train([" ".join(s) for s in corpus], order=order)
    _assert_normalized(lm, tuple(ctx))


def test_lm_dict_round_trip():
    lm = WordNgramLM.train(SENTENCES, order=3)
    back = WordNgramLM.from_dict(json.loads(json.dumps(lm.to_dict())))
    assert back.vocabulary == lm.vocabulary and back.order == 3
    words = sorted(lm.vocabulary) + ["ZEBRA"]
    for ctx in itertools.product([*words[:6], "ZEBRA"], repeat=2):
        for w in words:
            assert back.score(ctx, w) == lm.score(ctx, w)
    with pytest.raises(DataError, match="to_dict"):
        WordNgramLM.from_dict({"format": "acom-word-ngram/1", "order": 3})
    with pytest.raises(DataError):
        WordNgramLM.train(["", "  "])


def test_beam_search_speed():
    rng = np.random.default_rng(0)
    lp = torch.log_softmax(torch.from_numpy(rng.standard_normal((100, VOCAB.size)) * 2), dim=-1).numpy()
    lm = WordNgramLM.train(SENTENCES)
    for model in (None, lm):
        start = time.perf_counter()
        ctc_beam_search(lp, VOCAB, lm=model, beam=16)
        assert time.perf_counter() - start < 0.5
