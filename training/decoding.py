"""Turning CTC character log-probabilities into text: prefix beam search with a word LM (greedy: ``acom.core.ctc``).

The ASR head emits ``[T, V]`` log-probabilities over :class:`acom.core.ctc.CharVocab` (blank first) at
25 frames/s. Greedy decoding (``acom.core.ctc``) is the cheap baseline; :func:`ctc_beam_search` sums over alignments
(so a label split across several frames can beat a blank-only best path) and adds a word n-gram LM trained only on
the training transcripts. Everything here is numpy and plain python so the server needs no decoder library.

All LM scores are natural logs, the same base as the acoustic log-probabilities they are added to.
"""

from __future__ import annotations

import heapq
import math
import multiprocessing
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from acom.core.ctc import CharVocab, log_probs_array
from acom.errors import AcomError, DataError

__all__ = [
    "BOS",
    "EOS",
    "UNK",
    "WordNgramLM",
    "ctc_beam_search",
    "ctc_beam_search_many",
]

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_NEG_INF = float("-inf")
_FORMAT = "acom-word-ngram/1"
_PARALLEL_MIN_FRAMES = 5000  # below this (200 s of audio) starting worker processes costs more than it saves


class WordNgramLM:
    """Interpolated Kneser-Ney word n-gram model; ``score`` returns natural-log probabilities.

    Vocabulary: the training words, ``EOS`` and ``UNK``. The lowest order interpolates with a uniform
    distribution over that vocabulary, which is where ``UNK`` (never seen in training) gets its mass, so
    for any context the probabilities over the vocabulary sum to 1. Sentences are padded with
    ``order - 1`` ``BOS`` tokens, so a context shorter than ``order - 1`` means "sentence start".
    """

    def __init__(self, order: int, discounts: Sequence[float], counts: Sequence[dict[tuple, dict[str, int]]]):
        """Low-level constructor; use :meth:`train` or :meth:`from_dict`.

        ``counts[k]`` maps a context of k words to {next word: count}: raw counts for the highest
        order, continuation counts (distinct left neighbours) below it.
        """
        self.order = order
        self.discounts = tuple(float(d) for d in discounts)
        self._counts = [dict(c) for c in counts]
        # Per context: (total count, number of distinct followers), the two terms of the backoff weight.
        self._ctx_stats = [{h: (sum(f.values()), len(f)) for h, f in c.items()} for c in self._counts]
        self.vocabulary = frozenset(self._counts[0].get((), {})) | {EOS, UNK}
        self.lexicon = frozenset(self.vocabulary - {EOS, UNK})
        # every non-empty beginning of a lexicon word: what a lexicon-constrained beam may be spelling
        self.word_prefixes = frozenset(w[:i] for w in self.lexicon for i in range(1, len(w) + 1))
        self._cache: dict[tuple[tuple[str, ...], str], float] = {}

    @classmethod
    def train(cls, texts: Iterable[str], order: int = 3) -> WordNgramLM:
        """Count n-grams of the whitespace-split ``texts`` (used as given: no case folding)."""
        if order < 1:
            raise AcomError(f"order must be >= 1, got {order}")
        sentences = [t.split() for t in texts]
        if not any(sentences):
            raise DataError("WordNgramLM.train needs at least one non-empty transcript")
        for words in sentences:
            bad = {BOS, EOS, UNK} & set(words)
            if bad:
                raise DataError(f"transcripts may not contain the reserved tokens {sorted(bad)}")
        top: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for words in sentences:
            padded = [BOS] * (order - 1) + words + [EOS]
            for i in range(order - 1, len(padded)):
                top[tuple(padded[i - order + 1 : i])][padded[i]] += 1
        counts = [top]
        # Continuation count of a k-gram = number of distinct words seen before it; every k-gram ending
        # in a predicted token has a full left context thanks to the BOS padding.
        for _k in range(order - 2, -1, -1):
            lower: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for ctx, follow in counts[0].items():
                for word in follow:
                    lower[ctx[1:]][word] += 1
            counts.insert(0, lower)
        discounts = [_kn_discount(c) for c in counts]
        return cls(order, discounts, [{h: dict(f) for h, f in c.items()} for c in counts])

    def score(self, prev_words: tuple[str, ...], word: str) -> float:
        """ln P(word | prev_words); out-of-vocabulary words (and ``UNK``) share the unknown probability."""
        n_ctx = self.order - 1
        ctx = tuple(w if w in self.vocabulary else UNK for w in prev_words[len(prev_words) - n_ctx :]) if n_ctx else ()
        ctx = (BOS,) * (n_ctx - len(ctx)) + ctx
        word = word if word in self.vocabulary else UNK
        key = (ctx, word)
        cached = self._cache.get(key)
        if cached is None:
            cached = math.log(self._prob(ctx, word))
            self._cache[key] = cached
        return cached

    def _prob(self, ctx: tuple[str, ...], word: str) -> float:
        prob = 1.0 / len(self.vocabulary)
        for k in range(self.order):  # lowest order first; each level interpolates with the one below
            h = ctx[len(ctx) - k :] if k else ()
            stats = self._ctx_stats[k].get(h)
            if stats is None:
                continue  # unseen context: this level adds nothing, keep the lower-order estimate
            total, n_follow = stats
            d = self.discounts[k]
            c = self._counts[k][h].get(word, 0)
            prob = max(c - d, 0.0) / total + d * n_follow / total * prob
        return prob

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": {}}  # sent to decoding workers: the score cache stays behind

    def to_dict(self) -> dict:
        """JSON-serializable form; contexts are space-joined (words never contain spaces)."""
        return {
            "format": _FORMAT,
            "order": self.order,
            "discounts": list(self.discounts),
            "counts": [{" ".join(h): dict(f) for h, f in c.items()} for c in self._counts],
        }

    @classmethod
    def from_dict(cls, data: dict) -> WordNgramLM:
        """Inverse of :meth:`to_dict`; DataError if ``data`` is not a stored model of this format."""
        try:
            if data["format"] != _FORMAT:
                raise DataError(f"LM format is {data['format']!r}, expected {_FORMAT!r}")
            order = int(data["order"])
            discounts = [float(d) for d in data["discounts"]]
            counts = [
                {tuple(h.split()): {str(w): int(n) for w, n in f.items()} for h, f in level.items()}
                for level in data["counts"]
            ]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"malformed LM dict ({exc!r}); expected the output of WordNgramLM.to_dict") from exc
        if order < 1 or len(discounts) != order or len(counts) != order or not all(0 < d <= 1 for d in discounts):
            raise DataError(f"malformed LM dict: order {order} needs {order} discounts in (0, 1] and count levels")
        return cls(order, discounts, counts)


def _kn_discount(level: dict[tuple, dict[str, int]]) -> float:
    """Ney's estimate D = n1 / (n1 + 2 n2), clamped because tiny corpora give n2 = 0 (D = 1)."""
    values = [n for f in level.values() for n in f.values()]
    n1, n2 = values.count(1), values.count(2)
    d = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
    return min(max(d, 0.1), 0.9)


def _logaddexp(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b == _NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


class _LMScorer:
    """Word-level LM bonus of a prefix, cached because many beam entries share their history."""

    def __init__(self, lm: WordNgramLM | None, alpha: float, beta: float):
        self.lm, self.alpha, self.beta = lm, alpha, beta
        self.cache: dict[str, float] = {"": 0.0}

    def word_bonus(self, words: list[str], last: str) -> float:
        """alpha * ln P(last | words before it) + beta for one completed word."""
        lm_part = self.alpha * self.lm.score(tuple(words), last) if self.lm is not None else 0.0
        return lm_part + self.beta

    def extend_with_space(self, prefix: str) -> float:
        """Score of ``prefix + ' '``: the word that the space completes is scored now."""
        words = prefix.split()
        return self.cache[prefix] + self.word_bonus(words[:-1], words[-1])

    def final(self, prefix: str) -> float:
        """Score at the end of the utterance: an unfinished last word, then the end of sentence."""
        score = self.cache[prefix]
        words = prefix.split()
        if prefix and not prefix.endswith(" "):
            score += self.word_bonus(words[:-1], words[-1])
        if self.lm is not None and words:
            score += self.alpha * self.lm.score(tuple(words), EOS)
        return score


def ctc_beam_search(
    log_probs: torch.Tensor | np.ndarray,
    vocab: CharVocab,
    lm: WordNgramLM | None = None,
    beam: int = 16,
    alpha: float = 0.5,
    beta: float = 1.0,
    prune: float = -10.0,
    lexicon: bool = False,
) -> str:
    """CTC prefix beam search over ``log_probs`` [T, V] (natural log, e.g. ``log_softmax`` output).

    Each prefix keeps the probability of ending in blank and in its last character, so identical
    labellings reached by different alignments are merged. A prefix is ranked by its acoustic score
    plus, for each completed word (at a space and at the end), ``alpha * ln P_lm(word | history) + beta``;
    with ``lm=None`` only the per-word bonus ``beta`` applies. At the end the LM also scores the end of
    sentence. Symbols below ``prune`` in a frame are skipped (the frame's best symbol never is).
    Leading and doubled spaces are folded into the prefix, so the result is tidy like :func:`ctc_greedy`.

    ``lexicon=True`` spells only words of the LM's lexicon (the training words): a character is added only
    while the word being spelled is the beginning of a lexicon word, a space only after a whole one, and the
    result ends on a whole word (when some beam does). Words outside the lexicon can then never be
    recognized, so it pays where the vocabulary is closed (dev here, 10% of its words unseen in training: the
    uncut dev WER 51% -> 39% at beam 64, reports/asr-edge-gpu3); it wants a wider beam than the open search.
    """
    arr = log_probs_array(log_probs, 2, vocab).astype(np.float64)
    if beam < 1:
        raise AcomError(f"beam must be >= 1, got {beam}")
    if lexicon and lm is None:
        raise AcomError("lexicon=True needs an LM: its training words are the lexicon")
    scorer = _LMScorer(lm, alpha, beta)
    beams: dict[str, tuple[float, float]] = {"": (0.0, _NEG_INF)}  # prefix -> (ln p_blank, ln p_char)
    for frame in arr:
        keep = np.flatnonzero(frame >= prune)
        if keep.size == 0:
            keep = np.array([int(frame.argmax())])
        order = keep[np.argsort(-frame[keep], kind="stable")]
        cands = [(CharVocab.SYMBOLS[c - 1] if c else "", float(frame[c])) for c in order]
        beams = _step(beams, cands, scorer, beam, lm if lexicon else None)
    if lexicon:  # end on a whole word where some beam does
        whole = {p: v for p, v in beams.items() if not p.strip() or p.split()[-1] in lm.lexicon}
        beams = whole or beams
    finals: dict[str, tuple[float, float]] = {}  # tidy text -> (acoustic, lm); "X" and "X " merge here
    for prefix, (pb, pnb) in beams.items():
        text = prefix.strip()
        acoustic = _logaddexp(pb, pnb)
        old = finals.get(text)
        finals[text] = (_logaddexp(old[0], acoustic) if old else acoustic, scorer.final(prefix))
    return max(finals, key=lambda t: finals[t][0] + finals[t][1])


def ctc_beam_search_many(
    log_probs: Sequence[torch.Tensor | np.ndarray], vocab: CharVocab, lm: WordNgramLM | None = None, *,
    jobs: int | None = None, **kwargs
) -> list[str]:
    """:func:`ctc_beam_search` of each utterance ([T_i, V] each; ``kwargs`` as there), in order, the work shared
    by ``jobs`` worker processes (default: ``ACOM_DECODE_JOBS``, else the CPUs this process may use). The
    search is plain Python, one core per process; results equal the one-by-one search's."""
    arrs = [log_probs_array(o, 2, vocab) for o in log_probs]
    if jobs is None:
        jobs = int(os.environ.get("ACOM_DECODE_JOBS", 0)) or len(os.sched_getaffinity(0))
    jobs = min(jobs, len(arrs))
    if jobs <= 1 or sum(a.shape[0] for a in arrs) < _PARALLEL_MIN_FRAMES:
        return [ctc_beam_search(a, vocab, lm, **kwargs) for a in arrs]
    groups: list[list[int]] = [[] for _ in range(jobs)]
    load = [0] * jobs
    for i in sorted(range(len(arrs)), key=lambda i: -arrs[i].shape[0]):  # longest first to the least loaded
        g = load.index(min(load))
        groups[g].append(i)
        load[g] += arrs[i].shape[0]
    # fork: the workers run only Python and numpy on the arrays made above (no torch, so the parent's OpenMP
    # threads are never needed there), and unlike spawn/forkserver it does not rerun the caller's __main__
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
        parts = pool.map(_search_group, [([arrs[i] for i in g], vocab, lm, kwargs) for g in groups])
        out: list[str] = [""] * len(arrs)
        for g, hyps in zip(groups, parts):
            for i, h in zip(g, hyps):
                out[i] = h
    return out


def _search_group(job: tuple[list[np.ndarray], CharVocab, WordNgramLM | None, dict]) -> list[str]:
    arrs, vocab, lm, kwargs = job
    return [ctc_beam_search(a, vocab, lm, **kwargs) for a in arrs]


def _step(
    beams: dict[str, tuple[float, float]], cands: list[tuple[str, float]], scorer: _LMScorer, beam: int,
    lex: WordNgramLM | None = None,
) -> dict[str, tuple[float, float]]:
    """One frame: the ``beam`` best prefixes after extending every prefix by every candidate.

    ``cands`` is (symbol, log-prob) best first, blank as "". Prefixes already in the beam are scored
    exactly first (blank, repeat, folded space, and the step from their parent); a new prefix has one
    way in, so once it falls below the worst of the ``beam`` best kept scores the rest of that
    prefix's (sorted) candidates can be skipped without changing the result. With ``lex``, a new prefix
    must still be spelling (or, at a space, have ended) a word of ``lex.lexicon``.
    """
    nxt = {p: _stay(p, pb, pnb, cands) for p, (pb, pnb) in beams.items()}
    for p, entry in nxt.items():
        parent = beams.get(p[:-1]) if p else None
        lp = _lookup(cands, p[-1]) if parent is not None else None
        if lp is not None:
            prev = parent[0] if len(p) > 1 and p[-2] == p[-1] else _logaddexp(*parent)
            entry[1] = _logaddexp(entry[1], prev + lp)
    cache = scorer.cache
    kept = sorted((_logaddexp(*v) + cache[p] for p, v in nxt.items()), reverse=True)
    cutoff = kept[beam - 1] if len(kept) >= beam else _NEG_INF
    for p, (pb, pnb) in beams.items():
        total, last, lm_p = _logaddexp(pb, pnb), p[-1:], cache[p]
        word = p[p.rfind(" ") + 1:]  # the word being spelled ("" at the start and after a space)
        for ch, lp in cands:
            if not ch or (ch == " " and last in ("", " ")):
                continue  # blank and folded spaces were handled in _stay
            new = p + ch
            if new in beams:
                continue  # scored exactly above
            if lex is not None and (word not in lex.lexicon if ch == " " else word + ch not in lex.word_prefixes):
                continue  # spells no lexicon word
            if ch == " ":
                if new not in cache:
                    cache[new] = scorer.extend_with_space(p)
            elif total + lp + lm_p < cutoff:
                break  # candidates are sorted, so every later one is below the cutoff too
            else:
                cache[new] = lm_p
            value = (pb if ch == last else total) + lp
            nxt[new] = [_NEG_INF, value]
    best = heapq.nlargest(beam, nxt.items(), key=lambda kv: _logaddexp(*kv[1]) + cache[kv[0]])
    return {p: (v[0], v[1]) for p, v in best}


def _lookup(cands: list[tuple[str, float]], ch: str) -> float | None:
    for c, lp in cands:
        if c == ch:
            return lp
    return None


def _stay(prefix: str, pb: float, pnb: float, cands: list[tuple[str, float]]) -> list[float]:
    """[ln p_blank, ln p_char] of ``prefix`` after a frame that adds no character to it."""
    total, last = _logaddexp(pb, pnb), prefix[-1:]
    new_b = new_nb = _NEG_INF
    for ch, lp in cands:
        if not ch or (ch == " " and not prefix):
            new_b = _logaddexp(new_b, total + lp)  # blank, or a leading space (dropped when tidied)
        elif ch == " " and last == " ":
            new_nb = _logaddexp(new_nb, total + lp)  # doubled space: same tidy labelling
        elif ch == last:
            new_nb = _logaddexp(new_nb, pnb + lp)  # repeat without a blank collapses
    return [new_b, new_nb]
