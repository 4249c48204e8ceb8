"""The tail of a user's own model (core/custom.py), which has no streaming form: run once per stream, at its end.

Each stream's decoded features at the cut ([frames, D], lost frames as zeros, as in engine.py) are kept as they
arrive; when the stream ends the tail runs on all of them, exactly as the offline split model runs on the
stream's codes, and the stream gets its final result (a transcript by CTC greedy decoding, or a label with the
class probabilities). There are no partial results. Memory grows with a stream's length (D floats a frame:
24 KB a minute for D = 64 at 25 frames/s), bounded by the server's idle and gap limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from acom.core.ctc import CharVocab, ctc_greedy
from acom.core.tasks import TASKS
from acom.runtime.engine import Result, Work, _Engine, _result
from acom.runtime.streams import StreamKey


@dataclass
class _Stream:
    parts: list = field(default_factory=list)  # decoded features [n, D] per step
    frames: int = 0
    missing: int = 0


class WholeStreamEngine(_Engine):
    """``step(work) -> results``: features kept per stream, the tail run once when the stream ends."""

    def __init__(self, bundle, device: str = "cpu") -> None:
        super().__init__(bundle, device)
        self.runners: list = []  # no streaming blocks: nothing final before the end
        self.streams: dict[StreamKey, _Stream] = {}
        self.sequence = TASKS[bundle.task].sequence
        self.vocab = CharVocab()

    @property
    def gap_keep(self) -> int:
        """The whole tail sees a stream at once: a gap runs as all of its frames (max_gap_s bounds them)."""
        return 1 << 62

    @torch.inference_mode()
    def step(self, work: dict[StreamKey, Work]) -> list[Result]:
        xs = self._inputs(work, _Stream)
        results = []
        for key, x in zip(work, xs):
            s = self.streams[key]
            s.parts.append(x)
            if not work[key].ended:
                continue
            del self.streams[key]
            feats = torch.cat(s.parts).T[None]  # [1, D, T]
            if not feats.shape[-1]:
                results.append(_result(key, work[key], s.frames, s.missing))
                continue
            out = self.model.head_forward(feats, None)[0]
            if self.sequence:
                results.append(_result(key, work[key], s.frames, s.missing, text=ctc_greedy(out, self.vocab)))
            else:
                p = torch.softmax(out, dim=-1)
                results.append(_result(key, work[key], s.frames, s.missing, label=int(p.argmax()), scores=p.tolist()))
        return results
