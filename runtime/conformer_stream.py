"""A Conformer block run incrementally over many streams, each frame's work done once.

Offline, ``ConformerBlock.forward`` sees a whole utterance. Here each stream brings a few new frames per
step; per-frame layers (input projection, feed-forwards, q/k/v, GLU, output projections) run once per frame
on all streams' frames stacked flat (no padding), and only the two operators that mix frames look back:
attention keeps the keys and values of the last ``left`` frames, the depthwise convolution the last
``kernel - 1 - right`` GLU outputs. A frame's output is final once ``att.right + conv.right`` later frames have
arrived (or the stream ended: then the end is zero-padded exactly as the offline block pads it).
The result equals ``block(x)`` on the whole stream up to float rounding (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from acom.training.blocks import ConformerBlock


def _empty(c: int, device: torch.device) -> torch.Tensor:
    return torch.zeros(0, c, device=device)


@dataclass
class StreamState:
    """One stream's place in one block. Time-major tensors [frames, C]."""

    att_done: int = 0  # frames whose attention output exists
    kv_off: int = 0  # stream index of k[0] / v[0]
    x2: torch.Tensor = None  # residual after the first feed-forward, frames awaiting attention
    q: torch.Tensor = None  # their queries
    k: torch.Tensor = None  # keys of frames kv_off..have-1
    v: torch.Tensor = None
    x3: torch.Tensor = None  # residual after attention, frames awaiting the convolution
    y: torch.Tensor = None  # GLU outputs from (frames output) - conv_left on (zeros before the stream starts)
    extra: dict = field(default_factory=dict)


class ConformerStreamer:
    """``step(states, new_frames, ended) -> output frames`` for a batch of streams through one block."""

    def __init__(self, block: ConformerBlock) -> None:
        self.b = block
        att, conv = block.att, block.conv
        self.heads, self.left, self.right = att.heads, att.left, att.right
        self.c_right = min(conv.right, conv.kernel - 1)
        self.c_left = conv.kernel - 1 - self.c_right
        self.dim = block.out_dim

    @property
    def lookahead(self) -> int:
        """Frames after a frame that must arrive before its output is final."""
        return self.right + self.c_right

    def new_state(self, device: torch.device) -> StreamState:
        e = _empty(self.dim, device)
        return StreamState(x2=e, q=e, k=e, v=e, x3=e, y=torch.zeros(self.c_left, self.dim, device=device))

    def step(self, states: list[StreamState], new: list[torch.Tensor], ended: list[bool]) -> list[torch.Tensor]:
        """Feed ``new[i]`` [n_i, C_in] to stream i; returns its newly final outputs [m_i, C]."""
        b = self.b
        flat = torch.cat(new) if new else _empty(self.dim, states[0].y.device)
        h = b.inp(flat)
        h = h + 0.5 * b.ff1(h)
        q, k, v = b.att.qkv(b.att.norm(h)).chunk(3, dim=-1)
        sizes = [x.shape[0] for x in new]
        for s, hs, qs, ks, vs in zip(states, h.split(sizes), q.split(sizes), k.split(sizes), v.split(sizes)):
            s.x2, s.q = torch.cat([s.x2, hs]), torch.cat([s.q, qs])
            s.k, s.v = torch.cat([s.k, ks]), torch.cat([s.v, vs])
        x3 = self._attention(states, ended)
        y = F.glu(b.conv.pw1(b.conv.norm(x3)), dim=-1)
        counts = [s.extra.pop("att_new") for s in states]
        for s, ys, xs, end in zip(states, y.split(counts), x3.split(counts), ended):
            s.y, s.x3 = torch.cat([s.y, ys]), torch.cat([s.x3, xs])
            if end:  # the offline block pads the convolution's input with zeros after the last frame
                s.y = torch.cat([s.y, torch.zeros(self.c_right, self.dim, device=s.y.device)])
        return self._convolution(states, ended)

    def _attention(self, states: list[StreamState], ended: list[bool]) -> torch.Tensor:
        """Attention outputs (plus residual) of every frame whose keys have all arrived, flat [sum m_i, C]."""
        att, dev = self.b.att, self.b.att.qkv.weight.device
        m = [s.q.shape[0] - (0 if end else min(self.right, s.q.shape[0])) for s, end in zip(states, ended)]
        for s, mi in zip(states, m):
            s.extra["att_new"] = mi
        rows = [i for i, mi in enumerate(m) if mi > 0]
        if not rows:
            return _empty(self.dim, dev)
        pad = torch.nn.utils.rnn.pad_sequence
        q = pad([states[i].q[: m[i]] for i in rows], batch_first=True)
        k, v = pad([states[i].k for i in rows], batch_first=True), pad([states[i].v for i in rows], batch_first=True)
        mq, mk, c, hd = q.shape[1], k.shape[1], self.dim, self.dim // self.heads
        first_q = torch.tensor([states[i].att_done for i in rows], device=dev)
        first_k = torch.tensor([states[i].kv_off for i in rows], device=dev)
        n_k = torch.tensor([states[i].k.shape[0] for i in rows], device=dev)
        ar_q, ar_k = torch.arange(mq, device=dev), torch.arange(mk, device=dev)
        rel = (first_k[:, None, None] + ar_k[None, None, :]) - (first_q[:, None, None] + ar_q[None, :, None])
        allowed = ((rel >= -self.left) & (rel <= self.right) & (ar_k[None, None, :] < n_k[:, None, None]))[:, None]
        split = lambda x: x.reshape(x.shape[0], x.shape[1], self.heads, hd).transpose(1, 2)  # noqa: E731
        scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(hd)
        out = (torch.softmax(scores.masked_fill(~allowed, -1e4), dim=-1) @ split(v)).transpose(1, 2).reshape(
            len(rows), mq, c)
        out = torch.cat([out[j, : m[i]] for j, i in enumerate(rows)])
        res = torch.cat([states[i].x2[: m[i]] for i in rows])
        for i in rows:
            s = states[i]
            s.x2, s.q, s.att_done = s.x2[m[i]:], s.q[m[i]:], s.att_done + m[i]
            drop = max(0, s.att_done - self.left - s.kv_off)  # keys no later query can see
            s.k, s.v, s.kv_off = s.k[drop:], s.v[drop:], s.kv_off + drop
        return res + att.out(out)

    def _convolution(self, states: list[StreamState], ended: list[bool]) -> list[torch.Tensor]:
        """Outputs of the frames whose convolution window is complete, per stream [m_i, C]."""
        b, conv = self.b, self.b.conv
        dev, span = conv.dw.weight.device, self.c_left + self.c_right
        n = [max(0, s.y.shape[0] - span) for s in states]  # y holds c_left frames before the first pending one
        rows = [i for i, ni in enumerate(n) if ni > 0]
        outs = [_empty(self.dim, dev) for _ in states]
        if not rows:
            return outs
        y = torch.nn.utils.rnn.pad_sequence([states[i].y[: n[i] + span] for i in rows], batch_first=True)
        # the depthwise conv as windows x taps: oneDNN's depthwise conv1d costs ~0.6 ms per call at these sizes
        z = torch.einsum("bwck,ck->bwc", y.unfold(1, conv.kernel, 1), conv.dw.weight[:, 0])
        if conv.dw.bias is not None:
            z = z + conv.dw.bias
        z = F.silu(conv.bn(z.transpose(1, 2))).transpose(1, 2)
        z = conv.pw2(torch.cat([z[j, : n[i]] for j, i in enumerate(rows)]))
        x = torch.cat([states[i].x3[: n[i]] for i in rows]) + z
        x = b.norm(x + 0.5 * b.ff2(x))
        for i, xs in zip(rows, x.split([n[i] for i in rows])):
            s = states[i]
            s.x3, s.y = s.x3[n[i]:], s.y[n[i]:]
            outs[i] = xs
        return outs
