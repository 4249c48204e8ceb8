"""An entropy coder for RVQ codes that spends less than the bit budget (``acom.codes.budget.nominal_bps``).

``CodePriors`` holds per-stage code statistics counted on the training set's
codes (stored with the model), and ``encode_codes``/``decode_codes`` range-code an utterance with
them (constriction's queue coder, so decode order equals encode order). With ``context=True`` each
code is coded given the previous code of the same stage -- RVQ codes are nearly uniform one by
one, but far from independent in time. ``entropy_bps`` measures the real coded rate of a set.

Byte layout of one utterance: stage-major (all frames of stage 0, then stage 1, ...); the coder's
32-bit words big-endian, then up to 3 trailing bytes dropped when the decoder's 0xFF padding still
decodes the same codes (saves ~14 bits per utterance; an encoder that skips this is still valid).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable, Mapping, Sequence

import constriction
import numpy as np
import torch

from acom.codes.budget import check_sizes, nominal_bps
from acom.errors import AcomError, DataError

__all__ = [
    "MAX_CODEBOOK_SIZE",
    "CodePriors",
    "StageCounts",
    "decode_codes",
    "encode_codes",
    "entropy_bps",
]

MAX_CODEBOOK_SIZE = 1 << 16  # bigram keys prev*K+cur stay small; far from the coder's 24-bit precision
_FORMAT_VERSION = 1
_PAD_BYTE = 0xFF  # the sealed range coder value sits near the interval's low end: pad upward
_MERGE_EVERY = 1 << 22  # pending bigram keys folded into counts at this size, bounding memory
_CACHE_ENTRIES = 1 << 22  # probabilities held by cached context models, per stage


def _frozen(a: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    out = np.array(a, dtype=np.int64, copy=True)
    out.setflags(write=False)
    return out


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class StageCounts:
    """Training-set counts of one RVQ stage; bigrams are sparse because K*K can be 2**32."""

    codebook_size: int
    """K: codes of this stage are ``0..K-1``."""
    unigram: np.ndarray
    """[K] int64: how often each code occurred."""
    bigram_prev: np.ndarray
    """[M] int64: previous code of each observed pair; pairs sorted by (prev, cur), unique."""
    bigram_cur: np.ndarray
    """[M] int64: code that followed ``bigram_prev`` in the same stage."""
    bigram_count: np.ndarray
    """[M] int64 > 0: how often the pair occurred."""

    def __post_init__(self) -> None:
        k = self.codebook_size
        if not 1 <= k <= MAX_CODEBOOK_SIZE:
            raise DataError(f"codebook size {k}: expected 1..{MAX_CODEBOOK_SIZE}")
        for name in ("unigram", "bigram_prev", "bigram_cur", "bigram_count"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        m = self.bigram_prev.shape
        if self.unigram.shape != (k,) or self.bigram_cur.shape != m or self.bigram_count.shape != m:
            raise DataError(f"stage counts: expected unigram [{k}] and three bigram arrays of one length")
        if (self.unigram < 0).any() or (self.bigram_count < 1).any():
            raise DataError("stage counts: expected unigram counts >= 0 and bigram counts >= 1")
        keys = self.bigram_prev * k + self.bigram_cur
        pairs = np.stack([self.bigram_prev, self.bigram_cur])
        in_range = ((pairs >= 0) & (pairs < k)).all(axis=0)
        if not in_range.all() or (np.diff(keys) <= 0).any():
            raise DataError(f"stage counts: expected unique bigrams sorted by (prev, cur), codes 0..{k - 1}")


class _StageModel:
    """Probabilities derived from one stage's counts; identical float64 arithmetic on both ends.

    p(c) = (n_c + alpha) / (N + alpha K), so every code can be coded. Witten-Bell interpolation
    for context h seen T_h distinct successors in N_h pairs:
    p(c | h) = (n_hc + T_h p(c)) / (N_h + T_h); an unseen h uses p(c) (T_h := 1, N_h := 0 gives it).
    """

    def __init__(self, counts: StageCounts, alpha: float) -> None:
        k = counts.codebook_size
        self.codebook_size = k
        self.counts = counts
        self.p_uni = (counts.unigram + alpha) / (int(counts.unigram.sum()) + alpha * k)
        self.p_uni.setflags(write=False)
        self.uni_model = constriction.stream.model.Categorical(self.p_uni, perfect=False) if k > 1 else None
        self.keys = counts.bigram_prev * k + counts.bigram_cur
        self.indptr = np.searchsorted(counts.bigram_prev, np.arange(k + 1))
        types = np.diff(self.indptr)
        totals = np.zeros(k, dtype=np.int64)
        np.add.at(totals, counts.bigram_prev, counts.bigram_count)
        self.ctx_types = np.where(types == 0, 1, types).astype(np.float64)
        self.ctx_denom = (totals + self.ctx_types).astype(np.float64)
        self.context_model = functools.lru_cache(maxsize=max(64, _CACHE_ENTRIES // k))(self._build)

    def row(self, prev: int) -> np.ndarray:
        """p(. | prev): [K] float64."""
        lo, hi = self.indptr[prev], self.indptr[prev + 1]
        num = self.ctx_types[prev] * self.p_uni
        num[self.counts.bigram_cur[lo:hi]] += self.counts.bigram_count[lo:hi]
        return num / self.ctx_denom[prev]

    def _build(self, prev: int) -> constriction.stream.model.Categorical:
        # An unseen context's row is exactly p_uni, so the shared model codes it identically.
        # Eager (lazy=False) models: measured faster than lazy ones for K from 256 to 65536.
        if self.indptr[prev] == self.indptr[prev + 1]:
            return self.uni_model
        return constriction.stream.model.Categorical(self.row(prev), perfect=False)

    def code_probs(self, codes: np.ndarray, context: bool) -> np.ndarray:
        """p of each code as the coder saw it: codes [T] -> [T] float64 (for the ideal rate)."""
        p = self.p_uni[codes]
        if not context or codes.size < 2:
            return p
        prev, cur = codes[:-1], codes[1:]
        n_hc = np.zeros(prev.size, dtype=np.int64)
        if self.keys.size:
            want = prev * self.codebook_size + cur
            pos = np.minimum(np.searchsorted(self.keys, want), self.keys.size - 1)
            hit = self.keys[pos] == want
            n_hc[hit] = self.counts.bigram_count[pos[hit]]
        p[1:] = (n_hc + self.ctx_types[prev] * self.p_uni[cur]) / self.ctx_denom[prev]
        return p


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class CodePriors:
    """Per-stage code statistics of the training set, stored with the model for entropy coding."""

    stages: tuple[StageCounts, ...]
    """One entry per RVQ stage, in stage order."""
    alpha: float = 0.5
    """Add-alpha smoothing of the unigram, so codes never seen in training can still be coded."""

    def __post_init__(self) -> None:
        if not self.stages or not (math.isfinite(self.alpha) and self.alpha > 0):
            raise DataError(f"code priors: {len(self.stages)} stages, alpha {self.alpha}; "
                            "expected >= 1 stage and alpha > 0")

    @property
    def n_q(self) -> int:
        return len(self.stages)

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return tuple(s.codebook_size for s in self.stages)

    @functools.cached_property
    def _models(self) -> tuple[_StageModel, ...]:
        return tuple(_StageModel(s, self.alpha) for s in self.stages)

    @classmethod
    def estimate(cls, code_seqs: Iterable[np.ndarray], codebook_sizes: Sequence[int], *,
                 alpha: float = 0.5) -> CodePriors:
        """Count codes of the training utterances, each [n_q, T] with n_q == len(codebook_sizes)."""
        sizes = check_sizes(codebook_sizes)
        if max(sizes) > MAX_CODEBOOK_SIZE:
            raise AcomError(f"codebook_sizes {sizes}: expected each <= {MAX_CODEBOOK_SIZE}")
        unigram = [np.zeros(k, dtype=np.int64) for k in sizes]
        merged = [(np.zeros(0, np.int64), np.zeros(0, np.int64)) for _ in sizes]
        pending: list[list[np.ndarray]] = [[] for _ in sizes]
        for i, seq in enumerate(code_seqs):
            codes = _checked_codes(seq, sizes, f"utterance {i}", exact_n_q=True)
            for s, k in enumerate(sizes):
                unigram[s] += np.bincount(codes[s], minlength=k)
                pending[s].append(codes[s, :-1] * k + codes[s, 1:])
                if sum(p.size for p in pending[s]) >= _MERGE_EVERY:
                    merged[s] = _merge_keys(merged[s], pending[s])
                    pending[s] = []
        stages = []
        for s, k in enumerate(sizes):
            keys, counts = _merge_keys(merged[s], pending[s])
            stages.append(StageCounts(codebook_size=k, unigram=unigram[s], bigram_prev=keys // k,
                                      bigram_cur=keys % k, bigram_count=counts))
        return cls(stages=tuple(stages), alpha=alpha)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Plain tensors for a safetensors file or a ``weights_only=True`` checkpoint."""
        out = {"version": torch.tensor([_FORMAT_VERSION], dtype=torch.int64),
               "alpha": torch.tensor([self.alpha], dtype=torch.float64),
               "codebook_sizes": torch.tensor(self.codebook_sizes, dtype=torch.int64)}
        for s, st in enumerate(self.stages):
            for name in ("unigram", "bigram_prev", "bigram_cur", "bigram_count"):
                out[f"stage{s}.{name}"] = torch.tensor(getattr(st, name), dtype=torch.int64)
        return out

    @classmethod
    def from_tensors(cls, d: Mapping[str, torch.Tensor]) -> CodePriors:
        """Inverse of ``to_tensors``; DataError names a missing key or a wrong format version."""
        try:
            version = int(d["version"].reshape(-1)[0])
            if version != _FORMAT_VERSION:
                raise DataError(f"code priors format version {version}: expected {_FORMAT_VERSION}")
            sizes = [int(k) for k in d["codebook_sizes"].reshape(-1)]
            stages = tuple(
                StageCounts(codebook_size=k, **{n: d[f"stage{s}.{n}"] for n in
                                                ("unigram", "bigram_prev", "bigram_cur", "bigram_count")})
                for s, k in enumerate(sizes))
            return cls(stages=stages, alpha=float(d["alpha"].reshape(-1)[0]))
        except KeyError as e:
            raise DataError(f"code priors: missing tensor {e.args[0]!r} (expected the keys of to_tensors)") \
                from None


def _merge_keys(acc: tuple[np.ndarray, np.ndarray], parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Fold new bigram keys into sorted (unique keys, counts)."""
    keys = np.concatenate([acc[0], *parts])
    weights = np.concatenate([acc[1], *[np.ones(p.size, np.int64) for p in parts]])
    uniq, inverse = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inverse, weights=weights, minlength=uniq.size).astype(np.int64)


def _checked_codes(codes: np.ndarray, sizes: Sequence[int], where: str, *, exact_n_q: bool) -> np.ndarray:
    """Validate [n_q, T] integer codes against the codebook sizes; returns an int64 copy."""
    a = np.asarray(codes)
    allowed_n_q = f"{len(sizes)}" if exact_n_q else f"1..{len(sizes)}"
    if a.ndim != 2 or not (a.shape[0] == len(sizes) if exact_n_q else 1 <= a.shape[0] <= len(sizes)):
        raise DataError(f"{where}: codes of shape {a.shape}, expected [n_q, T] with n_q {allowed_n_q}")
    if a.dtype.kind not in "iu":
        raise DataError(f"{where}: codes of dtype {a.dtype}, expected integers")
    a = a.astype(np.int64)
    for s in range(a.shape[0]):
        bad = (a[s] < 0) | (a[s] >= sizes[s])
        if bad.any():
            t = int(np.argmax(bad))
            raise DataError(f"{where}, stage {s}, frame {t}: code {a[s, t]} outside the allowed range "
                            f"0..{sizes[s] - 1} (codebook size {sizes[s]})")
    return a


def _words_to_bytes(words: np.ndarray) -> bytes:
    return words.astype(">u4").tobytes()


def _bytes_to_words(data: bytes) -> np.ndarray:
    padded = bytes(data) + bytes([_PAD_BYTE]) * (-len(data) % 4)
    return np.frombuffer(padded, dtype=">u4").astype(np.uint32)


def _encode_stage(enc: constriction.stream.queue.RangeEncoder, model: _StageModel, codes: np.ndarray,
                  context: bool) -> None:
    """Append one stage's codes [T]; a K=1 stage carries no information and emits nothing."""
    if model.uni_model is None or codes.size == 0:
        return
    if not context:
        enc.encode(codes.astype(np.int32), model.uni_model)
        return
    enc.encode(int(codes[0]), model.uni_model)
    for prev, cur in zip(codes[:-1].tolist(), codes[1:].tolist()):
        enc.encode(cur, model.context_model(prev))


def _decode_stage(dec: constriction.stream.queue.RangeDecoder, model: _StageModel, num_frames: int,
                  context: bool) -> np.ndarray:
    """Inverse of ``_encode_stage``: [num_frames] int64."""
    if model.uni_model is None or num_frames == 0:
        return np.zeros(num_frames, dtype=np.int64)
    if not context:
        return np.asarray(dec.decode(model.uni_model, num_frames), dtype=np.int64)
    out = [int(dec.decode(model.uni_model))]
    for _ in range(num_frames - 1):
        out.append(int(dec.decode(model.context_model(out[-1]))))
    return np.asarray(out, dtype=np.int64)


def _decode_words(words: np.ndarray, priors: CodePriors, n_q: int, num_frames: int,
                  context: bool) -> np.ndarray:
    dec = constriction.stream.queue.RangeDecoder(words)
    try:
        return np.stack([_decode_stage(dec, priors._models[s], num_frames, context) for s in range(n_q)])
    except AssertionError as e:  # constriction's signal for words no encoder could have written
        raise DataError(f"coded codes ({4 * words.size} bytes): not a valid coding of {n_q} stages x "
                        f"{num_frames} frames under these priors ({e})") from None


def encode_codes(codes: np.ndarray, priors: CodePriors, context: bool = True) -> bytes:
    """Range-code one utterance's codes [n_q, T] (n_q <= priors.n_q: the first n_q stages)."""
    a = _checked_codes(codes, priors.codebook_sizes, "codes", exact_n_q=False)
    enc = constriction.stream.queue.RangeEncoder()
    for s in range(a.shape[0]):
        _encode_stage(enc, priors._models[s], a[s], context)
    return _drop_tail_bytes(_words_to_bytes(enc.get_compressed()), a, priors, context)


def _drop_tail_bytes(data: bytes, codes: np.ndarray, priors: CodePriors, context: bool) -> bytes:
    """Drop up to 3 final bytes while the decoder's padding still yields ``codes`` [n_q, T].

    Why trial decodes: whether a shorter tail decodes right depends on the coder's final
    interval, which constriction does not expose; a check is exact and costs one decode.
    """
    keep = len(data)
    while keep > max(len(data) - 3, 0):
        try:
            words = _bytes_to_words(data[:keep - 1])
            same = np.array_equal(_decode_words(words, priors, *codes.shape, context), codes)
        except DataError:
            same = False
        if not same:
            break
        keep -= 1
    return data[:keep]


def decode_codes(data: bytes, priors: CodePriors, n_q: int, num_frames: int,
                 context: bool = True) -> np.ndarray:
    """Inverse of ``encode_codes`` with the same priors and ``context``: -> codes [n_q, num_frames] int64.

    Range coding leaves no redundancy, so corrupted bytes mostly decode to other codes; only some
    raise DataError. Integrity is the wire format's job (its checksum), not this function's.
    """
    if not 1 <= n_q <= priors.n_q:
        raise AcomError(f"n_q {n_q}: expected 1..{priors.n_q} (the stages the priors hold)")
    if num_frames < 0:
        raise AcomError(f"num_frames {num_frames}: expected >= 0")
    return _decode_words(_bytes_to_words(data), priors, n_q, num_frames, context)


def entropy_bps(code_seqs: list[np.ndarray], priors: CodePriors, frame_rate: float,
                context: bool = True) -> dict[str, float]:
    """Real coded rate of utterances [n_q, T] (one n_q for all), each checked to decode back.

    Returns ``bits`` (sum of 8*len(bytes)), ``seconds`` (frames / frame_rate), ``bps``,
    ``ideal_bits``/``ideal_bps`` (sum of -log2 p under the same model, for comparison),
    ``nominal_bps`` (the fixed-length budget for these stages), ``frames``, ``utterances``, ``n_q``.
    """
    if not code_seqs:
        raise DataError("entropy_bps: expected at least one utterance")
    n_q = _checked_codes(code_seqs[0], priors.codebook_sizes, "utterance 0", exact_n_q=False).shape[0]
    sizes = priors.codebook_sizes[:n_q]
    budget = nominal_bps(frame_rate, sizes)
    bits = frames = 0
    ideal = 0.0
    for i, seq in enumerate(code_seqs):
        a = _checked_codes(seq, sizes, f"utterance {i}", exact_n_q=True)
        data = encode_codes(a, priors, context)
        if not np.array_equal(decode_codes(data, priors, n_q, a.shape[1], context), a):
            raise AcomError(f"utterance {i}: entropy coding did not round-trip "
                            "(a bug in acom.codes.priors)")
        bits += 8 * len(data)
        frames += a.shape[1]
        ideal += sum(float(-np.log2(priors._models[s].code_probs(a[s], context)).sum()) for s in range(n_q))
    if frames == 0:
        raise DataError("entropy_bps: the utterances hold no frames; expected at least one")
    seconds = frames / frame_rate
    return {"bits": float(bits), "seconds": seconds, "bps": bits / seconds, "ideal_bits": ideal,
            "ideal_bps": ideal / seconds, "nominal_bps": budget,
            "frames": float(frames), "utterances": float(len(code_seqs)), "n_q": float(n_q)}
