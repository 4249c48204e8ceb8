"""The ASR head's output alphabet and CTC best-path decoding: what the model core and the server share.

The ASR head emits ``[T, V]`` log-probabilities over :class:`CharVocab` (blank first) at 25 frames/s;
``ctc_greedy`` turns them into text (argmax per frame, merge repeats, drop blanks). Beam search with a
word LM lives in ``acom.training.decoding``. numpy and plain python, so the server needs no decoder library.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from acom.errors import AcomError, DataError

__all__ = ["CharVocab", "ctc_greedy", "ctc_greedy_batch", "log_probs_array"]


class CharVocab:
    """LibriSpeech characters for CTC: index 0 is the blank, then space, apostrophe and A..Z (29)."""

    SYMBOLS = " '" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

    def __init__(self) -> None:
        self._index = {ch: i + 1 for i, ch in enumerate(self.SYMBOLS)}

    @property
    def size(self) -> int:
        """Number of CTC outputs V, blank included."""
        return len(self.SYMBOLS) + 1

    @property
    def blank(self) -> int:
        return 0

    @property
    def space(self) -> int:
        return self._index[" "]

    def encode(self, text: str) -> list[int]:
        """Label ids of ``text``; DataError naming the first character outside the alphabet."""
        ids = []
        for pos, ch in enumerate(text):
            idx = self._index.get(ch)
            if idx is None:
                raise DataError(
                    f"character {ch!r} at position {pos} of {text!r} is not in the vocabulary "
                    f"(allowed: upper-case A-Z, apostrophe, space)"
                )
            ids.append(idx)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Characters of ``ids`` with blanks dropped (no repeat collapsing: that is CTC's job)."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < self.size:
                raise DataError(f"label id {i} is outside 0..{self.size - 1}")
            if i != self.blank:
                out.append(self.SYMBOLS[i - 1])
        return "".join(out)


def log_probs_array(log_probs: torch.Tensor | np.ndarray, ndim: int, vocab: CharVocab) -> np.ndarray:
    """`log_probs` as numpy, checked to be [T, V] (ndim 2) or [B, T, V] (ndim 3) over `vocab`; AcomError if not."""
    arr = log_probs.detach().cpu().numpy() if isinstance(log_probs, torch.Tensor) else np.asarray(log_probs)
    if arr.ndim != ndim or arr.shape[-1] != vocab.size:
        want = "[T, V]" if ndim == 2 else "[B, T, V]"
        raise AcomError(f"log_probs must be {want} with V={vocab.size}, got shape {tuple(arr.shape)}")
    return arr


def _collapse(best: Sequence[int], vocab: CharVocab) -> str:
    kept = [c for i, c in enumerate(best) if c != vocab.blank and (i == 0 or c != best[i - 1])]
    return " ".join(vocab.decode(kept).split())


def ctc_greedy(log_probs: torch.Tensor | np.ndarray, vocab: CharVocab) -> str:
    """Best-path decoding of ``log_probs`` [T, V]: argmax per frame, merge repeats, drop blanks.

    Spaces are tidied (no leading, trailing or doubled spaces), as in LibriSpeech transcripts.
    """
    arr = log_probs_array(log_probs, 2, vocab)
    return _collapse(arr.argmax(axis=-1).tolist(), vocab)


def ctc_greedy_batch(
    log_probs: torch.Tensor | np.ndarray, lengths: torch.Tensor | np.ndarray | Sequence[int], vocab: CharVocab
) -> list[str]:
    """:func:`ctc_greedy` for a padded batch: ``log_probs`` [B, T, V], valid frames ``lengths`` [B]."""
    arr = log_probs_array(log_probs, 3, vocab)
    lens = lengths.detach().cpu().numpy() if isinstance(lengths, torch.Tensor) else np.asarray(lengths)
    if lens.shape != (arr.shape[0],) or (lens < 0).any() or (lens > arr.shape[1]).any():
        raise AcomError(f"lengths must be [B={arr.shape[0]}] with values in 0..{arr.shape[1]}, got {lens.tolist()}")
    best = arr.argmax(axis=-1)
    return [_collapse(best[b, : int(n)].tolist(), vocab) for b, n in enumerate(lens)]
