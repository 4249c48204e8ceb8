"""The ASR tail for thousands of streams at once: every stream's state in ring buffers indexed by slot.

``AsrEngine`` keeps each stream's state in tensors of its own and loops over streams in Python where frames
mix, so on a GPU its step grows with the number of streams (kernel launches, not arithmetic). Here the
state of all streams of a Conformer block lives in a few tensors [slots, ring, C] (queries, keys, values,
the residuals waiting for attention and for the convolution, the GLU outputs), and a step runs the same few
dozen kernels whatever the number of streams: new frames are written at (slot, frame mod ring), attention
reads each stream's window of keys by index and masks what it may not see (before the stream, beyond the
frames received, outside left/right context), and the depthwise convolution reads its window of GLU outputs
the same way (zeros before the start and after the end, as the offline block pads). A stream brings at most
``chunk`` frames per pass; more are fed in several passes of the same step.

Frame counts stay on the host, so a step never waits for the device until it reads its characters, and
the per-stream bookkeeping runs while the device works. ``dtype="bfloat16"`` keeps blocks and rings in
bfloat16 (the output layer in float32).

``buckets=True`` rounds each pass's tensor sizes up to a few values (streams to 4 sizes per octave, frames to
multiples of 8), the extra rows reading and writing a scratch slot no stream owns, so that a server whose
batches vary step by step runs a few dozen shapes rather than a new one every few steps (a new shape can cost
the GPU libraries a plan or heuristic search, and the allocator new blocks). ``shapes`` lists the tensor sizes
of the last step (streams, frames in, frames out of each block, per pass).

Every stream's output equals the offline tail up to float rounding (tested against the model and against
``AsrEngine``; bfloat16 within a few characters), with the same CTC greedy decoding carried across steps.
Only Conformer blocks after the cut (the shipped ASR models); anything else uses ``AsrEngine``.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from acom.core.blocks import ConformerBlock
from acom.core.ctc import CharVocab
from acom.errors import AcomError
from acom.runtime.bundle import Bundle
from acom.runtime.conformer_stream import ConformerStreamer, _ff, _lin, _ln
from acom.runtime.engine import Result, Work, _Engine, _span
from acom.runtime.streams import StreamKey

# bfloat16 halves the bytes every ring read and write moves and runs the matrix products on tensor cores; its
# 8-bit mantissa changes a few characters of a transcript (tests/runtime/test_slot_engine.py bounds how many)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class SlotConformer:
    """One Conformer block over many streams; ``step`` takes and returns padded [B, T, C] with lengths [B]."""

    def __init__(self, block: ConformerBlock, chunk: int, capacity: int, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> None:
        att = block.att
        folded = ConformerStreamer(block)  # BatchNorm folded into the depthwise taps (in float32), as there
        self.taps, self.tap_bias = folded.taps.to(dtype), folded.tap_bias.to(dtype)
        # the block's weights in the engine's dtype (a copy: the bundle's model stays as it is)
        self.b = b = block if block.att.qkv.weight.dtype == dtype else copy.deepcopy(block).to(dtype)
        self.inp = (lambda x: x) if isinstance(b.inp, nn.Identity) else (lambda x: _lin(b.inp, x))
        self.dtype = dtype
        self.heads, self.left, self.right = att.heads, att.left, att.right
        self.c_left, self.c_right, self.dim = folded.c_left, folded.c_right, block.out_dim
        self.lookahead = self.right + self.c_right
        self.chunk = chunk  # most new frames per stream per pass
        self.att_max = chunk + self.right  # most frames attended per pass (at most `right` were waiting)
        self.out_max = self.att_max + self.c_right  # most frames output per pass: the next block's chunk
        # ring lengths: every frame still needed plus the most a pass writes (writes past the valid frames
        # land on slots no valid frame uses, so they need no mask)
        self.q_ring = self.right + chunk
        self.kv_ring = self.left + self.right + chunk
        self.x3_ring = self.c_right + self.att_max
        self.y_ring = self.c_left + self.c_right + self.att_max
        self.device, self.slots = device, 0
        self.conv1d = device.type == "cuda"
        self.grow(capacity)

    def grow(self, slots: int) -> None:
        """Room for `slots` streams (the state of those already there kept)."""
        # x2 and q, k and v are written and read at the same places: one buffer each pair (fewer kernels)
        for name, length, width in (("hq", self.q_ring, 2), ("kv", self.kv_ring, 2), ("x3", self.x3_ring, 1),
                                    ("y", self.y_ring, 1)):
            new = torch.zeros(slots, length, width * self.dim, device=self.device, dtype=self.dtype)
            if self.slots:
                new[: self.slots] = getattr(self, name)
            setattr(self, name, new)
        counts = np.zeros((3, slots), dtype=np.int64)
        if self.slots:
            counts[:, : self.slots] = self.counts
        # per slot: frames received, attended, output; kept on the host, so that the sizes of a step's tensors
        # are known without waiting for the GPU (the step's only wait is for its transcript characters)
        self.counts = counts
        self.slots = slots

    def reset(self, slots: np.ndarray) -> None:
        """New streams in these slots (ring contents need no clearing: reads mask by frame index)."""
        self.counts[:, slots] = 0

    def step(self, slots: np.ndarray, row: torch.Tensor, x: torch.Tensor, n_new: np.ndarray, ended: np.ndarray
             ) -> tuple[torch.Tensor, np.ndarray]:
        """x [B, T<=chunk, C_in] for the streams in `slots` [B] (on the device: `row` [B, 1]), n_new [B] valid
        frames, ended [B] -> outputs [B, T + right + c_right, C] and how many of them are valid [B]."""
        b = self.b
        B, T = x.shape[:2]
        n0, a0, c0 = self.counts[:, slots]
        n1 = n0 + n_new
        a1 = np.where(ended, n1, np.maximum(a0, n1 - self.right))
        c1 = np.where(ended, a1, np.maximum(c0, a1 - self.c_right))
        self.counts[:, slots] = n1, a1, c1
        n_out, dev = c1 - c0, x.device
        n0, a0, c0, n1, a1 = torch.from_numpy(np.stack([n0, a0, c0, n1, a1])).to(dev, non_blocking=True)
        # rows this pass needs: a stream attends at most its T new frames plus the `right` that waited, and
        # outputs at most those plus the `c_right` that waited (the rings are sized for T = chunk)
        att_w = min(self.att_max, T + self.right)
        out_w = att_w + self.c_right
        h = self.inp(x)
        h = h + 0.5 * _ff(b.ff1, h)
        qkv = _lin(b.att.qkv, _ln(b.att.norm, h))
        C = self.dim
        pos = n0[:, None] + torch.arange(T, device=dev)
        _put(self.hq, row, pos, torch.cat([h, qkv[..., :C]], dim=-1))
        _put(self.kv, row, pos, qkv[..., C:])
        # attention: queries a0 .. a0+att_w-1 (valid below a1), keys a0-left .. a0+att_w+right-1
        tq = a0[:, None] + torch.arange(att_w, device=dev)
        tk = (a0 - self.left)[:, None] + torch.arange(att_w + self.left + self.right, device=dev)
        hd = self.dim // self.heads
        split = lambda t: t.reshape(B, t.shape[1], self.heads, hd).transpose(1, 2)  # noqa: E731
        hq, kv = _get(self.hq, row, tq), _get(self.kv, row, tk)
        qs, ks, vs = split(hq[..., C:]), split(kv[..., :C]), split(kv[..., C:])
        rel = tk[:, None, :] - tq[:, :, None]
        allowed = (rel >= -self.left) & (rel <= self.right) & ((tk >= 0) & (tk < n1[:, None]))[:, None, :]
        scores = (qs @ ks.transpose(-1, -2) / math.sqrt(hd)).masked_fill(~allowed[:, None], -1e4)
        o = (torch.softmax(scores, dim=-1) @ vs).transpose(1, 2).reshape(B, att_w, self.dim)
        x3 = hq[..., :C] + _lin(b.att.out, o)
        y = F.glu(_lin(b.conv.pw1, _ln(b.conv.norm, x3)), dim=-1)
        _put(self.x3, row, tq, x3)
        _put(self.y, row, tq, y)
        # convolution: outputs c0 .. c0+out_w-1 (valid below c1), GLU outputs c0-c_left .. (zeros outside
        # 0 .. a1-1, as the offline block pads)
        span = self.c_left + self.c_right
        ty = (c0 - self.c_left)[:, None] + torch.arange(out_w + span, device=dev)
        ys = _get(self.y, row, ty) * ((ty >= 0) & (ty < a1[:, None]))[..., None]
        if self.conv1d:  # cuDNN's depthwise convolution: one kernel instead of span+1 passes over memory
            z = F.conv1d(ys.transpose(1, 2), self.taps.T[:, None, :], self.tap_bias, groups=self.dim).transpose(1, 2)
        else:  # on CPU oneDNN's depthwise conv1d is slower than shifted copies at these sizes
            z = self.tap_bias + ys[:, :out_w] * self.taps[0]
            for t in range(1, span + 1):
                z = z + ys[:, t: t + out_w] * self.taps[t]
        to = c0[:, None] + torch.arange(out_w, device=dev)
        out = _get(self.x3, row, to) + _lin(b.conv.pw2, F.silu(z))
        out = _ln(b.norm, out + 0.5 * _ff(b.ff2, out))
        return out, n_out


def _round8(n: int) -> int:
    """n rounded up to a multiple of 8."""
    return -(-n // 8) * 8


def _bucket(n: int) -> int:
    """n rounded up to the next of 4 sizes per octave (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, ...): at most 25%
    more rows, a few dozen sizes up to 10,000 streams."""
    step = 1 << max(0, n.bit_length() - 3)
    return -(-n // step) * step


def _get(ring: torch.Tensor, row: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """ring [S, R, C], row [B, 1] slots, t [B, T] frame indices -> ring[row, t % R] [B, T, C].

    index_select on rows of the flattened ring: on a GPU advanced indexing's generic kernel was the largest
    share of a step's time (profile at 5,000 streams, bench/tail_throughput.py --profile)."""
    flat = (row * ring.shape[1] + t % ring.shape[1]).reshape(-1)
    return ring.view(-1, ring.shape[2]).index_select(0, flat).view(*t.shape, ring.shape[2])


def _put(ring: torch.Tensor, row: torch.Tensor, t: torch.Tensor, val: torch.Tensor) -> None:
    """ring[row, t % R] = val [B, T, C] (no two (row, t % R) of one call are the same, T <= R, except in the
    scratch slot the padding rows of ``buckets`` share, whose contents nothing reads unmasked)."""
    flat = (row * ring.shape[1] + t % ring.shape[1]).reshape(-1)
    ring.view(-1, ring.shape[2]).index_copy_(0, flat, val.reshape(-1, ring.shape[2]))


class _Text:
    """A stream's counts and transcript: CTC characters appended, spaces collapsed as they arrive."""

    __slots__ = ("frames", "missing", "text", "space")

    def __init__(self) -> None:
        self.frames, self.missing, self.text, self.space = 0, 0, "", False

    def add(self, chars: str) -> None:
        """Same as " ".join((raw + chars).split()) on the raw characters so far, without rescanning them."""
        if not chars:
            return
        words = chars.split()
        if words:
            glue = " " if self.text and (self.space or chars[0] == " ") else ""
            self.text += glue + " ".join(words)
            self.space = chars[-1] == " "
        else:
            self.space = True


class SlotAsrEngine(_Engine):
    """``step(work) -> results`` like ``AsrEngine``, with every stream's state in slots (see the module doc)."""

    def __init__(self, bundle: Bundle, device: str = "cpu", chunk: int = 32, capacity: int = 64,
                 dtype: str = "float32", buckets: bool = False) -> None:
        super().__init__(bundle, device)
        if not all(isinstance(b, ConformerBlock) for b in self.tail):
            raise AcomError("the slot engine needs Conformer blocks after the cut; use AsrEngine")
        if dtype not in DTYPES:
            raise AcomError(f"tail dtype {dtype!r}: allowed {', '.join(DTYPES)}")
        self.dtype = DTYPES[dtype]
        self.runners, c = [], chunk
        for b in self.tail:
            self.runners.append(SlotConformer(b, c, capacity, self.device, self.dtype))
            c = self.runners[-1].out_max
        self.chunk, self.capacity = chunk, capacity
        self.vocab = CharVocab()
        self.symbols = np.frombuffer("".join(self.vocab.SYMBOLS).encode("ascii"), dtype=np.uint8)
        # decoded-codeword tables with a zero row at the end: code -1 (lost frame, or a stage the packet lacks)
        self.tables = [torch.cat([t, t.new_zeros(1, t.shape[1])]).to(self.dtype) for t in self._tables]
        self.slot_of: dict[StreamKey, int] = {}
        self.buckets = buckets  # with buckets slot 0 is the scratch slot of the padding rows (never a stream's)
        self.free: list[int] = list(range(capacity - 1, 0 if buckets else -1, -1))
        self.shapes: list[tuple[int, ...]] = []
        self.prev = torch.zeros(capacity, dtype=torch.long, device=self.device)  # last frame's best label
        self.streams: dict[StreamKey, _Text] = {}

    def drop(self, key: StreamKey) -> None:
        """Forget a stream's state and free its slot (after a failed step)."""
        if self.streams.pop(key, None) is not None:
            self.free.append(self.slot_of.pop(key))

    def _slots(self, keys: list[StreamKey]) -> list[int]:
        new = [k for k in keys if k not in self.slot_of]
        if len(new) > len(self.free):
            grow = max(self.capacity * 2, self.capacity - len(self.free) + len(new))
            for r in self.runners:
                r.grow(grow)
            prev = torch.zeros(grow, dtype=torch.long, device=self.device)
            prev[: self.capacity] = self.prev
            self.prev = prev
            self.free = list(range(grow - 1, self.capacity - 1, -1)) + self.free
            self.capacity = grow
        for k in new:
            self.slot_of[k] = self.free.pop()
            self.streams[k] = _Text()
        if new:
            fresh = np.array([self.slot_of[k] for k in new])
            for r in self.runners:
                r.reset(fresh)
            self.prev[torch.from_numpy(fresh).to(self.device)] = 0
        return [self.slot_of[k] for k in keys]

    @torch.inference_mode()
    def step(self, work: dict[StreamKey, Work]) -> list[Result]:
        keys = list(work)
        if not keys:
            return []
        slots = np.array(self._slots(keys))
        lens, codes = self._codes(work)
        starts = np.concatenate([[0], np.cumsum(lens)])
        ended = np.array([work[k].ended for k in keys])
        pending, self.shapes = [], []
        for p in range(max(1, -(-int(lens.max()) // self.chunk))):  # passes of at most `chunk` frames
            rows = np.nonzero((lens > p * self.chunk) | (p == 0))[0]
            n_new = np.clip(lens[rows] - p * self.chunk, 0, self.chunk)
            last = ended[rows] & (lens[rows] <= (p + 1) * self.chunk)
            width = max(1, int(n_new.max()))  # rows past every stream's new frames would be work for nothing
            on = slots[rows]
            if self.buckets:  # padding rows: no frames, the scratch slot
                width = min(self.chunk, _round8(width))
                pad = _bucket(len(rows)) - len(rows)
                on, n_new = (np.concatenate([on, np.zeros(pad, on.dtype)]),
                             np.concatenate([n_new, np.zeros(pad, n_new.dtype)]))
                last, rows_in = np.concatenate([last, np.zeros(pad, bool)]), np.concatenate([rows, np.full(pad, -1)])
            else:
                rows_in = rows
            idx = starts[rows_in, None] + p * self.chunk + np.arange(width)
            valid = np.arange(width)[None] < n_new[:, None]
            c = torch.from_numpy(codes[:, np.where(valid, idx, starts[-1])]).to(self.device, non_blocking=True)
            pending.append(self._decode(rows, on, c, n_new, last))
        # per stream, while the GPU works (nothing above waited for it): plain Python kept short, it is most
        # of a step's time at thousands of streams
        info, streams = [], self.streams
        for k in keys:
            w, s = work[k], streams[k]
            if len(w.chunks) == 1:
                c = w.chunks[0]
                s.frames += c.n_frames
                if c.codes is None:
                    s.missing += c.n_frames
                info.append((s, w.ended, (-1, -1) if c.codes is None else c.seqs, c.arrival))
            else:
                s.frames += sum(c.n_frames for c in w.chunks)
                s.missing += sum(c.n_frames for c in w.chunks if c.codes is None)
                info.append((s, w.ended, *_span(w)))
            if w.ended:  # its slot is free for the next step
                del streams[k]
                self.free.append(self.slot_of.pop(k))
        texts = [""] * len(keys)
        for rows, done in pending:
            self._collect(rows, done, texts)
        results = []
        for k, new, (s, end, seqs, arrival) in zip(keys, texts, info):
            if new:
                s.add(new)
            results.append(Result(k, end, s.frames, s.missing, seqs, arrival, s.text))
        return results

    def _codes(self, work: dict[StreamKey, Work]) -> tuple[np.ndarray, np.ndarray]:
        """Frames per stream [N] and every stream's new codes one after another [n_q, total + 1] (-1: lost,
        a stage the packet lacks, and the last column, which pads)."""
        chunks = [c for w in work.values() for c in w.chunks]
        per = [len(w.chunks) for w in work.values()]
        n = np.array([self.kept(c) for c in chunks], dtype=np.int64)  # a long gap runs as gap_keep frames
        if len(chunks) == len(per) and min(per) == 1:  # one chunk each: the usual step
            lens = n
        else:
            lens = np.zeros(len(per), dtype=np.int64)
            np.add.at(lens, np.repeat(np.arange(len(per)), per), n)
        nq, pool = len(self.tables), self.time_pool
        m = chunks[0].codes.shape[0] if chunks and chunks[0].codes is not None else 0
        if m and all(c.codes is not None and c.codes.shape[0] == m for c in chunks):
            # the usual step: every packet with the same stages (often fewer than the bundle has): one copy
            got = np.concatenate([c.codes for c in chunks] + [np.full((m, 1), -1)], axis=1)
            if pool > 1:  # each code frame is time_pool tail frames (the padding column stays one)
                got = np.concatenate([np.repeat(got[:, :-1], pool, axis=1), got[:, -1:]], axis=1)
            if m == nq:
                return lens, got
            codes = np.full((nq, got.shape[1]), -1, dtype=np.int64)
            codes[:m] = got
            return lens, codes
        codes = np.full((nq, int(lens.sum()) + 1), -1, dtype=np.int64)
        o = 0
        for c in chunks:
            if c.codes is not None:
                codes[: c.codes.shape[0], o: o + c.n_frames * pool] = np.repeat(c.codes, pool, axis=1)
            o += self.kept(c)
        return lens, codes

    def _decode(self, rows: np.ndarray, slots: np.ndarray, codes: torch.Tensor, n_new: np.ndarray,
                ended: np.ndarray) -> tuple[np.ndarray, tuple[torch.Tensor, torch.Tensor]]:
        """One pass: codes [n_q, B, T] (-1: none) through the tail, queued on the device without waiting for
        it -> (rows, (labels [B, M], emit [B, M])) for ``_collect``."""
        s = torch.from_numpy(slots).to(self.device, non_blocking=True)
        x = 0
        for table, c in zip(self.tables, codes):
            x = x + table[torch.where(c < 0, table.shape[0] - 1, c)]
        n, shape = n_new, [len(slots), x.shape[1]]
        for r in self.runners:
            x, n = r.step(slots, s[:, None], x, n, ended)
            # each block returns room for its most outputs; the next needs only as many rows as any stream has
            keep = max(1, int(n.max()))
            x = x[:, : min(x.shape[1], _round8(keep)) if self.buckets else keep]
            shape.append(x.shape[1])
        self.shapes.append(tuple(shape))
        head = self.model.head  # in float32 whatever the blocks' dtype: the argmax is the transcript
        labels = F.linear(x.float(), head.weight[:, :, 0], head.bias).argmax(-1)  # [B, M]
        n = torch.from_numpy(n).to(self.device, non_blocking=True)
        valid = torch.arange(labels.shape[1], device=self.device)[None] < n[:, None]
        before = torch.cat([self.prev[s][:, None], labels[:, :-1]], dim=1)
        emit = valid & (labels != self.vocab.blank) & (labels != before)
        lastpos = (n - 1).clamp(min=0)
        self.prev[s] = torch.where(n > 0, labels.gather(1, lastpos[:, None])[:, 0], self.prev[s])
        return rows, (labels, emit)

    def _collect(self, rows: np.ndarray, done: tuple[torch.Tensor, torch.Tensor], texts: list[str]) -> None:
        """Wait for a pass queued by ``_decode``; its new characters into texts."""
        labels, emit = done
        counts = emit.sum(1).cpu().numpy()[: len(rows)]  # padding rows (buckets) have no frames, so emit nothing
        chars = self.symbols[labels[emit].cpu().numpy() - 1].tobytes().decode("ascii")
        got = np.nonzero(counts)[0]  # plain ints below: numpy scalars made this loop 3x slower at 5,000 streams
        ends = np.cumsum(counts[got]).tolist()
        for r, a, e in zip(rows[got].tolist(), [0] + ends[:-1], ends):
            texts[r] += chars[a:e]
