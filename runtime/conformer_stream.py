"""A Conformer block run incrementally over many streams, each frame's work done once.

Offline, ``ConformerBlock.forward`` sees a whole utterance. Here each stream brings a few new frames per
step; per-frame layers (input projection, feed-forwards, q/k/v, GLU, output projections) run once per frame
on all streams' frames stacked flat (no padding), and only the two operators that mix frames look back:
attention keeps the keys and values of the last ``left`` frames, the depthwise convolution the last
``kernel - 1 - right`` GLU outputs. A frame's output is final once ``att.right + conv.right`` later frames have
arrived (or the stream ended: then the end is zero-padded exactly as the offline block pads it).
The result equals ``block(x)`` on the whole stream up to float rounding (tested).

Speed (a step costs ~15 ms at one stream on one core, mostly fixed costs): layers are called as functions
on their weights (no nn.Module dispatch), BatchNorm is folded into the depthwise taps, and attention groups
streams whose query/key windows have the same shape (the steady state) so their band mask is reused.
Queries are attended in blocks of ``BLOCK`` frames over only the keys their band can see, so a step with a
long input (a stream's backlog, a gap) needs memory linear in its frames, not quadratic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from acom.core.blocks import ConformerBlock

BLOCK = 64  # queries attended at once: a step's scores are [streams, heads, BLOCK, BLOCK + left + right] at most


def _lin(m: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, m.weight, m.bias)


def _ln(m: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, m.normalized_shape, m.weight, m.bias, m.eps)


def _ff(ff: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The block's FeedForward (pre-norm MLP; dropout is off at inference)."""
    return _lin(ff.down, F.silu(_lin(ff.up, _ln(ff.norm, x))))


def own(t: torch.Tensor) -> torch.Tensor:
    """``t``, copied when it is a small view of a much larger tensor: what a stream keeps between steps must not
    keep a big step's tensors alive (64 streams each kept ~18 MB that way after one 1,300-frame step)."""
    return t.clone() if t.untyped_storage().nbytes() > 2 * t.nbytes + 4096 else t


@dataclass
class StreamState:
    """One stream's place in one block. Time-major tensors [frames, C]."""

    x2: torch.Tensor  # residual after the first feed-forward, frames awaiting attention
    q: torch.Tensor  # their queries
    k: torch.Tensor  # keys of frames kv_off..(frames received - 1)
    v: torch.Tensor
    x3: torch.Tensor  # residual after attention, frames awaiting the convolution
    y: torch.Tensor  # GLU outputs from (frames output - conv_left) on (zeros before the stream starts)
    att_done: int = 0  # frames whose attention output exists
    kv_off: int = 0  # stream index of k[0] / v[0]
    att_new: int = 0  # frames attended in the current step


class ConformerStreamer:
    """``step(states, new_frames, ended) -> output frames`` for a batch of streams through one block."""

    def __init__(self, block: ConformerBlock) -> None:
        self.b = b = block
        att, conv = block.att, block.conv
        self.heads, self.left, self.right = att.heads, att.left, att.right
        self.c_right = min(conv.right, conv.kernel - 1)
        self.c_left = conv.kernel - 1 - self.c_right
        self.dim = block.out_dim
        with torch.no_grad():  # BatchNorm (eval) after the depthwise conv, folded into its taps
            scale = conv.bn.weight / torch.sqrt(conv.bn.running_var + conv.bn.eps)
            bias = conv.dw.bias if conv.dw.bias is not None else torch.zeros_like(scale)
            self.taps = (conv.dw.weight[:, 0] * scale[:, None]).T.contiguous()  # [K, C]
            self.tap_bias = (bias - conv.bn.running_mean) * scale + conv.bn.bias
        self.inp = (lambda x: x) if isinstance(b.inp, nn.Identity) else (lambda x: _lin(b.inp, x))
        self._masks: dict[tuple[int, int, int], torch.Tensor] = {}

    @property
    def lookahead(self) -> int:
        """Frames after a frame that must arrive before its output is final."""
        return self.right + self.c_right

    def new_state(self, device: torch.device) -> StreamState:
        e = torch.zeros(0, self.dim, device=device)
        return StreamState(x2=e, q=e, k=e, v=e, x3=e, y=torch.zeros(self.c_left, self.dim, device=device))

    def step(self, states: list[StreamState], new: list[torch.Tensor], ended: list[bool]) -> list[torch.Tensor]:
        """Feed ``new[i]`` [n_i, C_in] to stream i; returns its newly final outputs [m_i, C]."""
        b = self.b
        h = self.inp(torch.cat(new))
        h = h + 0.5 * _ff(b.ff1, h)
        q, k, v = _lin(b.att.qkv, _ln(b.att.norm, h)).chunk(3, dim=-1)
        sizes = [x.shape[0] for x in new]
        for s, hs, qs, ks, vs in zip(states, h.split(sizes), q.split(sizes), k.split(sizes), v.split(sizes)):
            if hs.shape[0]:
                s.x2, s.q = torch.cat([s.x2, hs]), torch.cat([s.q, qs])
                s.k, s.v = torch.cat([s.k, ks]), torch.cat([s.v, vs])
        x3 = self._attention(states, ended)
        y = F.glu(_lin(b.conv.pw1, _ln(b.conv.norm, x3)), dim=-1)
        counts = [s.att_new for s in states]
        for s, ys, xs, end in zip(states, y.split(counts), x3.split(counts), ended):
            if ys.shape[0]:
                s.y, s.x3 = torch.cat([s.y, ys]), torch.cat([s.x3, xs])
            if end:  # the offline block pads the convolution's input with zeros after the last frame
                s.y = torch.cat([s.y, s.y.new_zeros(self.c_right, self.dim)])
        return self._convolution(states)

    def _mask(self, m: int, nk: int, delta: int) -> torch.Tensor:
        """[m, nk] True where query j (stream frame first_key + delta + j) may see key r."""
        key = (m, nk, delta)
        if key not in self._masks:
            rel = torch.arange(nk)[None, :] - (delta + torch.arange(m))[:, None]
            self._masks[key] = ((rel >= -self.left) & (rel <= self.right)).to(self.b.att.qkv.weight.device)
            if len(self._masks) > 4096:  # shapes seen in a long run: keep memory bounded
                self._masks.clear()
        return self._masks[key]

    def _band(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, delta: int) -> torch.Tensor:
        """Attention of queries q [B, H, m, hd] (query j is key delta + j) over the keys k, v [B, H, nk, hd]
        its band can see (delta + j - left .. delta + j + right): [B, H, m, hd]."""
        m, hd = q.shape[2], q.shape[3]
        lo, hi = max(0, delta - self.left), min(k.shape[2], delta + m + self.right)
        k, v = k[:, :, lo:hi], v[:, :, lo:hi]
        scores = (q @ k.transpose(-1, -2) / math.sqrt(hd)).masked_fill(~self._mask(m, hi - lo, delta - lo), -1e4)
        return torch.softmax(scores, dim=-1) @ v

    def _attention(self, states: list[StreamState], ended: list[bool]) -> torch.Tensor:
        """Attention outputs (plus residual) of every frame whose keys have all arrived, flat [sum m_i, C]."""
        groups: dict[tuple[int, int, int], list[int]] = {}
        for i, (s, end) in enumerate(zip(states, ended)):
            s.att_new = s.q.shape[0] - (0 if end else min(self.right, s.q.shape[0]))
            if s.att_new > 0:
                groups.setdefault((s.att_new, s.k.shape[0], s.att_done - s.kv_off), []).append(i)
        if not groups:
            return states[0].x2[:0]
        hd = self.dim // self.heads
        heads = lambda x: x.reshape(x.shape[0], x.shape[1], self.heads, hd).transpose(1, 2)  # noqa: E731
        parts: dict[int, torch.Tensor] = {}
        for (m, nk, delta), rows in groups.items():
            q = heads(torch.stack([states[i].q[:m] for i in rows]))
            k, v = heads(torch.stack([states[i].k for i in rows])), heads(torch.stack([states[i].v for i in rows]))
            out = torch.cat([self._band(q[:, :, j: j + BLOCK], k, v, delta + j)
                             for j in range(0, m, BLOCK)], dim=2)  # queries in blocks: memory linear in m
            out = out.transpose(1, 2).reshape(len(rows), m, self.dim)
            parts.update({i: out[j] for j, i in enumerate(rows)})
        order = sorted(parts)
        out = _lin(self.b.att.out, torch.cat([parts[i] for i in order]))
        res = torch.cat([states[i].x2[: states[i].att_new] for i in order])
        for i in order:
            s = states[i]
            s.x2, s.q, s.att_done = own(s.x2[s.att_new:]), own(s.q[s.att_new:]), s.att_done + s.att_new
            drop = max(0, s.att_done - self.left - s.kv_off)  # keys no later query can see
            s.k, s.v, s.kv_off = own(s.k[drop:]), own(s.v[drop:]), s.kv_off + drop
        return res + out

    def _convolution(self, states: list[StreamState]) -> list[torch.Tensor]:
        """Outputs of the frames whose convolution window is complete, per stream [m_i, C]."""
        b, span = self.b, self.c_left + self.c_right
        n = [max(0, s.y.shape[0] - span) for s in states]  # y holds c_left frames before the first pending one
        rows = [i for i, ni in enumerate(n) if ni > 0]
        outs = [s.y[:0] for s in states]
        if not rows:
            return outs
        # the depthwise conv as a sum of shifted copies (oneDNN's depthwise conv1d costs ~0.6 ms per call at
        # these sizes; windows x taps would make a K times larger temporary)
        y = torch.nn.utils.rnn.pad_sequence([states[i].y[: n[i] + span] for i in rows], batch_first=True)
        width = y.shape[1] - span
        z = self.tap_bias + y[:, :width] * self.taps[0]
        for t in range(1, span + 1):
            z = z + y[:, t: t + width] * self.taps[t]
        z = F.silu(torch.cat([z[j, : n[i]] for j, i in enumerate(rows)]))
        x = torch.cat([states[i].x3[: n[i]] for i in rows]) + _lin(b.conv.pw2, z)
        x = _ln(b.norm, x + 0.5 * _ff(b.ff2, x))
        for i, xs in zip(rows, x.split([n[i] for i in rows])):
            s = states[i]
            s.x3, s.y = own(s.x3[n[i]:]), own(s.y[n[i]:])
            outs[i] = xs
        return outs
