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

Every stream's output equals the offline tail up to float rounding (tested against the model and against
``AsrEngine``), with the same CTC greedy decoding carried across steps. Only Conformer blocks after the cut
(the shipped ASR models); anything else uses ``AsrEngine``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from acom.errors import AcomError
from acom.runtime.bundle import Bundle
from acom.runtime.conformer_stream import ConformerStreamer, _ff, _lin, _ln
from acom.runtime.engine import Result, Work, _Engine, _span
from acom.runtime.streams import StreamKey
from acom.training.blocks import ConformerBlock
from acom.training.decoding import CharVocab


class SlotConformer:
    """One Conformer block over many streams; ``step`` takes and returns padded [B, T, C] with lengths [B]."""

    def __init__(self, block: ConformerBlock, chunk: int, capacity: int, device: torch.device) -> None:
        self.b, att = block, block.att
        folded = ConformerStreamer(block)  # BatchNorm folded into the depthwise taps, as there
        self.taps, self.tap_bias, self.inp = folded.taps, folded.tap_bias, folded.inp
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
        for name, length in (("x2", self.q_ring), ("q", self.q_ring), ("k", self.kv_ring), ("v", self.kv_ring),
                             ("x3", self.x3_ring), ("y", self.y_ring)):
            new = torch.zeros(slots, length, self.dim, device=self.device)
            if self.slots:
                new[: self.slots] = getattr(self, name)
            setattr(self, name, new)
        counts = torch.zeros(3, slots, dtype=torch.long, device=self.device)
        if self.slots:
            counts[:, : self.slots] = self.counts
        self.counts = counts  # per slot: frames received, frames attended, frames output
        self.slots = slots

    def reset(self, slots: torch.Tensor) -> None:
        """New streams in these slots (ring contents need no clearing: reads mask by frame index)."""
        self.counts[:, slots] = 0

    def step(self, slots: torch.Tensor, x: torch.Tensor, n_new: torch.Tensor, ended: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T<=chunk, C_in], n_new [B] valid frames, ended [B] -> outputs [B, out_max, C], counts [B]."""
        b = self.b
        B, T = x.shape[:2]
        n0, a0, c0 = self.counts[:, slots]
        dev = x.device
        h = self.inp(x)
        h = h + 0.5 * _ff(b.ff1, h)
        q, k, v = _lin(b.att.qkv, _ln(b.att.norm, h)).chunk(3, dim=-1)
        row = slots[:, None]
        pos = n0[:, None] + torch.arange(T, device=dev)
        self.x2[row, pos % self.q_ring] = h
        self.q[row, pos % self.q_ring] = q
        self.k[row, pos % self.kv_ring] = k
        self.v[row, pos % self.kv_ring] = v
        n1 = n0 + n_new
        a1 = torch.where(ended, n1, torch.maximum(a0, n1 - self.right))
        # attention: queries a0 .. a0+att_max-1 (valid below a1), keys a0-left .. a0+att_max+right-1
        tq = a0[:, None] + torch.arange(self.att_max, device=dev)
        tk = (a0 - self.left)[:, None] + torch.arange(self.att_max + self.left + self.right, device=dev)
        hd = self.dim // self.heads
        split = lambda t: t.reshape(B, t.shape[1], self.heads, hd).transpose(1, 2)  # noqa: E731
        qs = split(self.q[row, tq % self.q_ring])
        ks, vs = split(self.k[row, tk % self.kv_ring]), split(self.v[row, tk % self.kv_ring])
        rel = tk[:, None, :] - tq[:, :, None]
        allowed = (rel >= -self.left) & (rel <= self.right) & ((tk >= 0) & (tk < n1[:, None]))[:, None, :]
        scores = (qs @ ks.transpose(-1, -2) / math.sqrt(hd)).masked_fill(~allowed[:, None], -1e4)
        o = (torch.softmax(scores, dim=-1) @ vs).transpose(1, 2).reshape(B, self.att_max, self.dim)
        x3 = self.x2[row, tq % self.q_ring] + _lin(b.att.out, o)
        y = F.glu(_lin(b.conv.pw1, _ln(b.conv.norm, x3)), dim=-1)
        self.x3[row, tq % self.x3_ring] = x3
        self.y[row, tq % self.y_ring] = y
        c1 = torch.where(ended, a1, torch.maximum(c0, a1 - self.c_right))
        # convolution: outputs c0 .. c0+out_max-1 (valid below c1), GLU outputs c0-c_left .. (zeros outside
        # 0 .. a1-1, as the offline block pads)
        span = self.c_left + self.c_right
        ty = (c0 - self.c_left)[:, None] + torch.arange(self.out_max + span, device=dev)
        ys = self.y[row, ty % self.y_ring] * ((ty >= 0) & (ty < a1[:, None]))[..., None]
        if self.conv1d:  # cuDNN's depthwise convolution: one kernel instead of span+1 passes over memory
            z = F.conv1d(ys.transpose(1, 2), self.taps.T[:, None, :], self.tap_bias, groups=self.dim).transpose(1, 2)
        else:  # on CPU oneDNN's depthwise conv1d is slower than shifted copies at these sizes
            z = self.tap_bias + ys[:, : self.out_max] * self.taps[0]
            for t in range(1, span + 1):
                z = z + ys[:, t: t + self.out_max] * self.taps[t]
        to = c0[:, None] + torch.arange(self.out_max, device=dev)
        out = self.x3[row, to % self.x3_ring] + _lin(b.conv.pw2, F.silu(z))
        out = _ln(b.norm, out + 0.5 * _ff(b.ff2, out))
        self.counts[:, slots] = torch.stack([n1, a1, c1])
        return out, c1 - c0


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

    def __init__(self, bundle: Bundle, device: str = "cpu", chunk: int = 32, capacity: int = 64) -> None:
        super().__init__(bundle, device)
        if not all(isinstance(b, ConformerBlock) for b in self.tail):
            raise AcomError("the slot engine needs Conformer blocks after the cut; use AsrEngine")
        self.runners, c = [], chunk
        for b in self.tail:
            self.runners.append(SlotConformer(b, c, capacity, self.device))
            c = self.runners[-1].out_max
        self.chunk, self.capacity = chunk, capacity
        self.vocab = CharVocab()
        self.symbols = np.frombuffer("".join(self.vocab.SYMBOLS).encode("ascii"), dtype=np.uint8)
        # decoded-codeword tables with a zero row at the end: code -1 (lost frame, or a stage the packet lacks)
        self.tables = [torch.cat([t, t.new_zeros(1, t.shape[1])]) for t in self._tables]
        self.slot_of: dict[StreamKey, int] = {}
        self.free: list[int] = list(range(capacity - 1, -1, -1))
        self.prev = torch.zeros(capacity, dtype=torch.long, device=self.device)  # last frame's best label
        self.streams: dict[StreamKey, _Text] = {}

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
            fresh = torch.tensor([self.slot_of[k] for k in new], device=self.device)
            for r in self.runners:
                r.reset(fresh)
            self.prev[fresh] = 0
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
        texts = [""] * len(keys)
        for p in range(max(1, -(-int(lens.max()) // self.chunk))):  # passes of at most `chunk` frames
            rows = np.nonzero((lens > p * self.chunk) | (p == 0))[0]
            n_new = np.clip(lens[rows] - p * self.chunk, 0, self.chunk)
            last = ended[rows] & (lens[rows] <= (p + 1) * self.chunk)
            width = max(1, int(n_new.max()))  # rows past every stream's new frames would be work for nothing
            idx = starts[rows, None] + p * self.chunk + np.arange(width)
            valid = np.arange(width)[None] < n_new[:, None]
            c = torch.as_tensor(codes[:, np.where(valid, idx, starts[-1])], device=self.device)
            self._decode(rows, slots[rows], c, n_new, last, texts)
        # per stream: plain Python kept short, it is most of a step's time at thousands of streams
        results, streams = [], self.streams
        for k, new in zip(keys, texts):
            w, s = work[k], streams[k]
            if len(w.chunks) == 1:
                c = w.chunks[0]
                s.frames += c.n_frames
                if c.codes is None:
                    s.missing += c.n_frames
                seqs, arrival = ((-1, -1) if c.codes is None else c.seqs), c.arrival
            else:
                s.frames += sum(c.n_frames for c in w.chunks)
                s.missing += sum(c.n_frames for c in w.chunks if c.codes is None)
                seqs, arrival = _span(w)
            if new:
                s.add(new)
            results.append(Result(k, w.ended, s.frames, s.missing, seqs, arrival, s.text))
            if w.ended:
                del streams[k]
                self.free.append(self.slot_of.pop(k))
        return results

    def _codes(self, work: dict[StreamKey, Work]) -> tuple[np.ndarray, np.ndarray]:
        """Frames per stream [N] and every stream's new codes one after another [n_q, total + 1] (-1: lost,
        a stage the packet lacks, and the last column, which pads)."""
        chunks = [c for w in work.values() for c in w.chunks]
        per = [len(w.chunks) for w in work.values()]
        n = np.array([c.n_frames for c in chunks], dtype=np.int64)
        if len(chunks) == len(per) and min(per) == 1:  # one chunk each: the usual step
            lens = n
        else:
            lens = np.zeros(len(per), dtype=np.int64)
            np.add.at(lens, np.repeat(np.arange(len(per)), per), n)
        nq = len(self.tables)
        if chunks and all(c.codes is not None and c.codes.shape[0] == nq for c in chunks):
            return lens, np.concatenate([c.codes for c in chunks] + [np.full((nq, 1), -1)], axis=1)
        codes = np.full((nq, int(lens.sum()) + 1), -1, dtype=np.int64)
        o = 0
        for c in chunks:
            if c.codes is not None:
                codes[: c.codes.shape[0], o: o + c.n_frames] = c.codes
            o += c.n_frames
        return lens, codes

    def _decode(self, rows: np.ndarray, slots: np.ndarray, codes: torch.Tensor, n_new: np.ndarray,
                ended: np.ndarray, texts: list[str]) -> None:
        """One pass: codes [n_q, B, chunk] (-1: none) through the tail; new characters into texts."""
        s = torch.as_tensor(slots, device=self.device)
        x = 0
        for table, c in zip(self.tables, codes):
            x = x + table[torch.where(c < 0, table.shape[0] - 1, c)]
        n = torch.as_tensor(n_new, device=self.device)
        e = torch.as_tensor(ended, device=self.device)
        for r in self.runners:
            x, n = r.step(s, x, n, e)
            # each block returns room for its most outputs; the next needs only as many rows as any stream has
            x = x[:, : max(1, int(n.max()))]
        head = self.model.head
        labels = F.linear(x, head.weight[:, :, 0], head.bias).argmax(-1)  # [B, M]
        valid = torch.arange(labels.shape[1], device=self.device)[None] < n[:, None]
        before = torch.cat([self.prev[s][:, None], labels[:, :-1]], dim=1)
        emit = valid & (labels != self.vocab.blank) & (labels != before)
        lastpos = (n - 1).clamp(min=0)
        self.prev[s] = torch.where(n > 0, labels.gather(1, lastpos[:, None])[:, 0], self.prev[s])
        counts = emit.sum(1).cpu().numpy()
        chars = self.symbols[labels[emit].cpu().numpy() - 1].tobytes().decode("ascii")
        off = 0
        for i in np.nonzero(counts)[0]:
            texts[rows[i]] += chars[off: off + counts[i]]
            off += counts[i]
