"""The server's tail, batched across streams: codes in, transcripts or labels out, frame by frame.

``AsrEngine`` runs the tail incrementally and exactly: Conformer blocks through ``ConformerStreamer`` (each
frame's work once), other stride-1 blocks through ``WindowRunner`` (each step recomputes the block's left
reach; streams right-padded together, padding only reaching outputs that are not final yet, and a stream's
last run alone so its end is padded exactly as offline). A stream's final transcript equals the tail run once
on the whole stream (tested). CTC greedy decoding carries across steps.

``SlotAsrEngine`` (runtime/slot_engine.py) gives the same ASR results with all streams' state in shared
tensors; ``acom.runtime.engines.make_engine`` picks it on CUDA when the tail is all Conformer blocks.

``ClassifierEngine`` runs its blocks the same way on new frames only and pools the last ``window_s`` seconds
of final outputs (windows of equal length batched together).

With a pooled quantizer (``time_pool`` P > 1) each decoded code frame enters the tail P times: the tail runs
at its own frame rate, a chunk of n code frames is n * P tail frames, and ``kept`` and ``gap_keep`` count tail
frames (results count code frames, as packets do).

Lost frames (``Chunk.codes is None``) enter the tail as zero feature vectors at the cut. The quantizer's
decoded features have no "silence" code, and zeros are what the blocks' own padding uses; the classifier
instead leaves lost frames out of its pooling. Results count the lost frames so the caller sees them.
A long gap is not materialized: the tail has no absolute positions, so every frame of a gap farther than the
tail's reach from both of its ends sees only zeros and gives the same output, which CTC's merging of repeats
(and the classifier's pooling, which skips lost frames) makes count once. A gap runs through the tail as at
most ``gap_keep`` frames (its two edges and one such frame; the classifier adds its pooling window), so a
packet that claims a long gap costs the tail no more than a short one, with the same result (tested).
Threading: the server calls ``step`` from one worker thread; nothing else touches the tail's state.
"""

from __future__ import annotations

import contextlib
import gc
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from acom.core.blocks import ConformerBlock, TDNNBlock
from acom.core.ctc import CharVocab
from acom.errors import AcomError
from acom.runtime.bundle import Bundle
from acom.runtime.conformer_stream import ConformerStreamer, own
from acom.runtime.streams import Chunk, StreamKey


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each field through object.__setattr__, and a step
class Result:            # builds one per stream
    """One update of a stream's output."""

    key: StreamKey
    final: bool
    frames: int  # frames of the stream the output covers
    missing_frames: int  # of those, frames that were lost
    seqs: tuple[int, int]  # packets applied in this update (first, last); (-1, -1) when none
    arrival: float  # earliest arrival of the packets applied in this update (latency = emitted - arrival)
    text: str | None = None  # ASR: the transcript so far
    label: int | None = None  # classifier: the best class
    scores: list[float] | None = None  # classifier: class probabilities
    error: str | None = None  # the tail failed on this stream: the result is incomplete (final)


@dataclass
class Work:
    """A stream's input for one step: its new chunks, and whether it has ended."""

    chunks: list[Chunk] = field(default_factory=list)
    ended: bool = False


def block_reach(block: torch.nn.Module) -> tuple[int, int]:
    """(past, future) input frames one output frame of a stride-1 block depends on."""
    if isinstance(block, ConformerBlock):
        conv = block.conv
        c_right = min(conv.right, conv.kernel - 1)
        return block.att.left + conv.kernel - 1 - c_right, block.att.right + c_right
    if isinstance(block, TDNNBlock) and block.stride == 1:
        span = block.dilation * (block.kernel - 1)
        return span - min(block.right, span), min(block.right, span)
    raise AcomError(f"{type(block).__name__} (stride {getattr(block, 'stride', '?')}): the streaming tail "
                    f"needs Conformer or stride-1 TDNN blocks after the cut")


class _Engine:
    """What both engines share: the tail's blocks, decoded-codeword tables, per-stream inputs."""

    runners: list  # per tail block: a ConformerStreamer or WindowRunner (set by the subclass)
    streams: dict  # StreamKey -> the subclass's per-stream state (with ``frames`` and ``missing``)

    def __init__(self, bundle: Bundle, device: str = "cpu") -> None:
        self.bundle, self.device = bundle, torch.device(device)
        self.split = bundle.split.to(self.device).eval()
        self.model = self.split.model
        self.tail = list(self.model.blocks[self.split.split_layer + 1:])
        self.time_pool = self.split.time_pool  # tail frames per code frame
        with torch.inference_mode():  # stage s, code j -> that stage's decoded contribution [K_s, D]
            self._tables = [st.out_proj(st.lookup(torch.arange(k, device=self.device)[None]))[0].T.contiguous()
                            for st, k in zip(self.split.rvq.stages, self.split.rvq.config.codebook_sizes)]

    @property
    def gap_keep(self) -> int:
        """Frames of a gap the tail runs: its reach into the gap from both ends, plus one frame that sees only
        zeros (a subclass adds what its output needs beyond that)."""
        return sum(sum(block_reach(b)) for b in self.tail) + 1

    def kept(self, c: Chunk) -> int:
        """Tail frames ``c`` runs through the tail: all of its frames (times ``time_pool``), or ``gap_keep`` of a
        longer gap."""
        n = c.n_frames * self.time_pool
        return n if c.codes is not None else min(n, self.gap_keep)

    def drop(self, key: StreamKey) -> None:
        """Forget a stream's state (after a failed step: it cannot be trusted)."""
        self.streams.pop(key, None)

    @property
    def lookahead_frames(self) -> int:
        """Frames after a frame that must arrive before its output is final (the tail's algorithmic delay)."""
        return sum(r.lookahead for r in self.runners)

    def _inputs(self, work: dict[StreamKey, Work], new_stream) -> list[torch.Tensor]:
        """Each stream's new frames as features [n, D] (time-major); creates states with ``new_stream()`` and
        counts frames received and lost."""
        feats = iter(self._features([c for k in work for c in work[k].chunks]))
        xs, dim = [], self.split.rvq.config.dim
        for k, w in work.items():
            s = self.streams.get(k)
            if s is None:
                s = self.streams[k] = new_stream()
            parts = [next(feats) for _ in w.chunks]
            xs.append(torch.cat(parts) if parts else torch.zeros(0, dim, device=self.device))
            s.frames += sum(c.n_frames for c in w.chunks)
            s.missing += sum(c.n_frames for c in w.chunks if c.codes is None)
        return xs

    def _features(self, chunks: list[Chunk]) -> list[torch.Tensor]:
        """Decoded features [n, D] (time-major) per chunk, zeros for lost frames (``kept`` of them): per-stage
        tables of decoded codewords (``rvq.decode`` normalizes and projects the codebooks on every call)."""
        out: list[torch.Tensor] = []
        dim = self.split.rvq.config.dim
        for c in chunks:
            if c.codes is None:
                out.append(torch.zeros(self.kept(c), dim, device=self.device))
                continue
            codes = torch.as_tensor(c.codes, device=self.device)
            x = self._tables[0][codes[0]]
            for s in range(1, codes.shape[0]):
                x = x + self._tables[s][codes[s]]
            out.append(x if self.time_pool == 1 else x.repeat_interleave(self.time_pool, dim=0))
        return out


class WindowRunner:
    """Any stride-1 block with a bounded reach, run on windows: each step recomputes its ``left`` past frames."""

    def __init__(self, block: torch.nn.Module) -> None:
        self.block = block
        self.left, self.right = block_reach(block)
        self.lookahead = self.right

    def new_state(self, device: torch.device) -> dict:
        return {"buf": None, "off": 0, "done": 0}

    def step(self, states: list[dict], new: list[torch.Tensor], ended: list[bool]) -> list[torch.Tensor]:
        """Feed ``new[i]`` [n_i, C_in] (time-major) to stream i; returns its newly final outputs [m_i, C]."""
        jobs = []  # (stream, window [n, C], window start, outputs up to)
        for i, (s, x, end) in enumerate(zip(states, new, ended)):
            s["buf"] = x if s["buf"] is None else torch.cat([s["buf"], x])
            have = s["off"] + s["buf"].shape[0]
            upto = have if end else have - self.right
            if upto > s["done"]:
                start = max(s["off"], s["done"] - self.left)
                jobs.append((i, s["buf"][start - s["off"]:], start, upto))
        outs = [x.new_zeros(0, self.block.out_dim) for x in new]
        batched = [j for j in jobs if not ended[j[0]]]
        groups = ([batched] if batched else []) + [[j] for j in jobs if ended[j[0]]]  # an end goes alone: padded
        for group in groups:                                                        # exactly as offline
            lens = torch.tensor([w.shape[0] for _, w, _, _ in group], device=new[0].device)
            x = torch.zeros(len(group), int(lens.max()), group[0][1].shape[1], device=new[0].device)
            for j, (_, w, _, _) in enumerate(group):
                x[j, : w.shape[0]] = w
            mask = None if len(group) == 1 else torch.arange(x.shape[1], device=x.device)[None] >= lens[:, None]
            xt = x.transpose(1, 2)
            fast = isinstance(self.block, TDNNBlock)  # same result, a matrix product instead of oneDNN's conv
            y = (tdnn_as_matmul(self.block, xt) if fast else self.block(xt, mask)).transpose(1, 2)
            for j, (i, _, start, upto) in enumerate(group):
                s = states[i]
                outs[i] = y[j, s["done"] - start: upto - start]
                keep = max(s["off"], upto - self.left)  # what the next window still needs
                s["buf"], s["off"], s["done"] = own(s["buf"][keep - s["off"]:]), keep, upto
        return outs


@dataclass
class _AsrStream:
    blocks: list  # per tail block: its runner's state
    chars: list[str] = field(default_factory=list)
    prev: int = 0  # last frame's best label (CTC repeats merge across steps)
    frames: int = 0
    missing: int = 0


class AsrEngine(_Engine):
    """Streaming CTC recognition over many streams: Conformer blocks incrementally (each frame once), other
    stride-1 blocks on windows."""

    def __init__(self, bundle: Bundle, device: str = "cpu") -> None:
        super().__init__(bundle, device)
        self.runners = [ConformerStreamer(b) if isinstance(b, ConformerBlock) else WindowRunner(b) for b in self.tail]
        self.vocab = CharVocab()
        self.streams: dict[StreamKey, _AsrStream] = {}

    @torch.inference_mode()
    def step(self, work: dict[StreamKey, Work]) -> list[Result]:
        keys = list(work)
        if not keys:
            return []
        xs = self._inputs(work, lambda: _AsrStream([r.new_state(self.device) for r in self.runners]))
        ended = [work[k].ended for k in keys]
        for b, runner in enumerate(self.runners):
            xs = runner.step([self.streams[k].blocks[b] for k in keys], xs, ended)
        head = self.model.head  # Conv1d(C, V, 1): a linear map per frame
        sizes = [x.shape[0] for x in xs]
        best = F.linear(torch.cat(xs), head.weight[:, :, 0], head.bias).argmax(-1).tolist()
        results, pos = [], 0
        for k, n in zip(keys, sizes):
            s = self.streams[k]
            for label in best[pos: pos + n]:
                if label != self.vocab.blank and label != s.prev:
                    s.chars.append(self.vocab.SYMBOLS[label - 1])
                s.prev = label
            pos += n
            text = " ".join("".join(s.chars).split())
            results.append(_result(k, work[k], s.frames, s.missing, text=text))
            if work[k].ended:
                del self.streams[k]
        return results


@dataclass
class _ClassStream:
    blocks: list  # per tail block: its runner's state
    out: torch.Tensor  # the last ``window`` final outputs of the last block [n, C]
    valid: torch.Tensor  # [n] False where the frame was lost
    pending: list[bool] = field(default_factory=list)  # validity of frames not final yet
    frames: int = 0
    missing: int = 0


class ClassifierEngine(_Engine):
    """Sound classification of the last ``window_s`` seconds of each stream, incrementally: the blocks after the
    cut run on new frames only (``WindowRunner``), the pooling and the classifier on the window. A label
    covers the frames final so far (the blocks' look-ahead, 6 frames for the shipped model, arrives later);
    at the end of a stream all frames are final, and with a window at least as long as the stream the label
    equals the tail run once on the whole stream (tested)."""

    def __init__(self, bundle: Bundle, device: str = "cpu", window_s: float = 4.0) -> None:
        super().__init__(bundle, device)
        self.window = max(1, round(window_s * bundle.frame_rate * self.time_pool))  # tail frames
        self.runners = [WindowRunner(b) for b in self.tail]
        self.streams: dict[StreamKey, _ClassStream] = {}

    @property
    def gap_keep(self) -> int:
        """A gap longer than the window leaves only lost frames in it, as the full gap would."""
        return super().gap_keep + self.window

    @torch.inference_mode()
    def step(self, work: dict[StreamKey, Work]) -> list[Result]:
        keys = list(work)
        if not keys:
            return []
        e = torch.zeros(0, self.tail[-1].out_dim, device=self.device)
        none = torch.zeros(0, dtype=torch.bool, device=self.device)
        xs = self._inputs(work, lambda: _ClassStream([r.new_state(self.device) for r in self.runners], e, none))
        for k in keys:
            self.streams[k].pending += [c.codes is not None for c in work[k].chunks for _ in range(self.kept(c))]
        ended = [work[k].ended for k in keys]
        for b, runner in enumerate(self.runners):
            xs = runner.step([self.streams[k].blocks[b] for k in keys], xs, ended)
        by_len: dict[int, list[StreamKey]] = {}
        for k, x in zip(keys, xs):
            s = self.streams[k]
            flags, s.pending = s.pending[: x.shape[0]], s.pending[x.shape[0]:]
            s.out = own(torch.cat([s.out, x])[-self.window:])
            flags = torch.tensor(flags, dtype=torch.bool, device=self.device)
            s.valid = own(torch.cat([s.valid, flags])[-self.window:])
            if s.valid.any():
                by_len.setdefault(s.out.shape[0], []).append(k)
        probs: dict[StreamKey, list[float]] = {}
        m = self.model
        for group in by_len.values():  # windows of equal length together: no padding
            x = torch.stack([self.streams[k].out for k in group]).transpose(1, 2)
            lost = ~torch.stack([self.streams[k].valid for k in group])
            p = torch.softmax(m.head(m.drop(m.pool(x, lost))), dim=-1)
            probs.update({k: p[i].tolist() for i, k in enumerate(group)})
        results = []
        for k in keys:
            s, p = self.streams[k], probs.get(k)
            label = None if p is None else max(range(len(p)), key=p.__getitem__)
            results.append(_result(k, work[k], s.frames, s.missing, label=label, scores=p))
            if work[k].ended:
                del self.streams[k]
        return results


def tdnn_as_matmul(block: TDNNBlock, x: torch.Tensor) -> torch.Tensor:
    """``block(x)`` for x [B, C, T] as windows x weights: oneDNN's dilated conv1d takes ~0.7 ms at [1, 192, 20]
    on one core, the matrix product 0.2 ms."""
    span = block.dilation * (block.kernel - 1)
    right = min(block.right, span)
    xp = F.pad(x, (span - right, right)).unfold(2, span + 1, 1)[..., :: block.dilation]  # [B, C, T, K]
    w = block.conv.weight  # [O, C, K]
    y = F.linear(xp.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[2], -1), w.reshape(w.shape[0], -1),
                 block.conv.bias).transpose(1, 2)
    y = F.batch_norm(F.relu(y), block.norm.running_mean, block.norm.running_var, block.norm.weight,
                     block.norm.bias, False, 0.0, block.norm.eps)
    return x + y if block.residual else y


def _span(w: Work) -> tuple[tuple[int, int], float]:
    """Packets applied (first, last seq; (-1, -1) when none) and the earliest arrival of a step's chunks."""
    seqs = [c.seqs for c in w.chunks if c.codes is not None]
    arrival = min((c.arrival for c in w.chunks), default=float("nan"))
    return ((min(a for a, _ in seqs), max(b for _, b in seqs)) if seqs else (-1, -1)), arrival


def _result(k: StreamKey, w: Work, frames: int, missing: int, **out) -> Result:
    return Result(k, w.ended, frames, missing, *_span(w), **out)


def quiet_gc() -> None:
    """Call once the model is loaded: collect, freeze what exists (model, imports) so later collections skip it,
    and collect the young generation less often. A step makes a few objects per stream; at 5,000 streams the
    Python part of a slot-engine step had p99 119 ms with the default collector (full collections walking
    every live object) and 29 ms with this, median 27 ms both (`bench/tail_throughput.py --python-only`,
    reports/tail_throughput.json)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20000, 50, 100)


def release_heap() -> None:
    """glibc only (elsewhere nothing): give the heap's free pages back to the system (``malloc_trim``). Called
    after a big tail step: glibc keeps what a step freed for reuse, and a burst of the largest packets would
    otherwise leave the server at the peak of its biggest step for good (bench/serve_memory.py). Mapping every
    large block on its own instead (a fixed ``M_MMAP_THRESHOLD``) made ordinary steps 3x slower: fresh pages
    each time."""
    import ctypes
    import ctypes.util
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
