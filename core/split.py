"""The cut: a model with a residual vector quantizer after block L, and its two halves.

`SplitModel` trains (task loss + quantizer losses, straight-through). `EdgeEncoder` (front-end, blocks
0..L, `rvq.encode`) is all the device runs and all export ever sees; `ServerDecoder` (`rvq.decode`,
blocks L+1.., head) is what the server runs. Both halves share the SplitModel's modules (no copies).
`cut_module` cuts a user's own `nn.Module` at a named submodule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.fx
from torch import nn

from acom.core.models import BlockModel, check_split_layer
from acom.core.rvq import QuantizedResult, ResidualVQ, RVQConfig
from acom.errors import AcomError


@dataclass(frozen=True)
class SplitOutput:
    """What a training forward returns."""

    logits: torch.Tensor  # ASR: log-probs [B, T, V]; AC: logits [B, classes]
    lengths: torch.Tensor | None  # valid output frames [B] (ASR), None when the input was unpadded
    quant: QuantizedResult | None  # None when the model runs uncut (no quantizer)
    cut_lengths: torch.Tensor | None  # valid code frames at the cut [B] (codes beyond them are padding)


class SplitModel(nn.Module):
    """`model` with `rvq` after block `split_layer` (rvq None: the uncut model, same interface)."""

    def __init__(self, model: BlockModel, split_layer: int, rvq: ResidualVQ | None) -> None:
        super().__init__()
        check_split_layer(model, split_layer)
        if rvq is not None and rvq.config.dim != model.cut_dim(split_layer):
            raise AcomError(f"the quantizer's dim {rvq.config.dim} does not match the {model.cut_dim(split_layer)} "
                            f"channels after block {split_layer}")
        self.model, self.split_layer, self.rvq = model, split_layer, rvq

    @property
    def frame_rate(self) -> float:
        """Code frames per second at the cut (codes per second per stage): the model's frame rate after block
        `split_layer`, divided by the quantizer's ``time_pool``."""
        return self.model.frame_rate_at(self.split_layer) / self.time_pool

    @property
    def time_pool(self) -> int:
        """Frames at the cut per code frame (1 without a quantizer)."""
        return 1 if self.rvq is None else self.rvq.config.time_pool

    def cut_features(self, feats: torch.Tensor, lengths: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features at the cut [B, D, T_cut] (before quantization) from log-mels [B, n_mels, T]."""
        return self.model.run_blocks(feats, lengths, 0, self.split_layer + 1)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None, n_q: int | None = None
                ) -> SplitOutput:
        x, lengths = self.cut_features(feats, lengths)
        p = self.time_pool
        cut_lengths, quant = (lengths if lengths is None or p == 1 else (lengths + p - 1) // p), None
        if self.rvq is not None:
            quant = self.rvq(x, n_q)
            x = quant.x
        x, lengths = self.model.run_blocks(x, lengths, self.split_layer + 1, len(self.model.blocks))
        return SplitOutput(self.model.head_forward(x, lengths), lengths, quant, cut_lengths)

    def edge(self, n_q: int | None = None) -> "EdgeEncoder":
        return EdgeEncoder(self, n_q)

    def server(self) -> "ServerDecoder":
        return ServerDecoder(self)


class EdgeEncoder(nn.Module):
    """Device half: waveform [B, N] at 16 kHz -> codes [B, n_q, T_code] (int64; T_code = T_cut / time_pool)."""

    def __init__(self, split: SplitModel, n_q: int | None = None) -> None:
        super().__init__()
        if split.rvq is None:
            raise AcomError("this model has no quantizer at the cut: train stage 2 (acom train) first")
        self.frontend, self.rvq, self.n_q = split.model.frontend, split.rvq, n_q
        self.register_buffer("feat_mean", split.model.feat_mean)
        self.register_buffer("feat_std", split.model.feat_std)
        self.blocks = nn.ModuleList(split.model.blocks[: split.split_layer + 1])

    def logmel(self, wave: torch.Tensor) -> torch.Tensor:
        """Normalized log-mel [B, n_mels, F] for waveform [B, N] (what a microcontroller's firmware computes)."""
        return (self.frontend(wave) - self.feat_mean) / self.feat_std

    def cut(self, x: torch.Tensor) -> torch.Tensor:
        """Features at the cut [B, D, T_cut] from normalized log-mel [B, n_mels, F]: blocks 0..L."""
        for block in self.blocks:
            x = block(x)
        return x

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """Features at the cut [B, D, T_cut] for waveform [B, N]."""
        return self.cut(self.logmel(wave))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.rvq.encode(self.features(wave), self.n_q)


class ServerDecoder(nn.Module):
    """Server half: codes [B, n_q, T_code] (any n_q up to the trained one) and their lengths [B] in code frames
    -> task output (the tail runs on T_code * time_pool frames)."""

    def __init__(self, split: SplitModel) -> None:
        super().__init__()
        if split.rvq is None:
            raise AcomError("this model has no quantizer at the cut: train stage 2 (acom train) first")
        self.split = split

    def forward(self, codes: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        m = self.split.model
        x = self.split.rvq.decode(codes)
        if lengths is not None:
            lengths = lengths * self.split.time_pool
        x, lengths = m.run_blocks(x, lengths, self.split.split_layer + 1, len(m.blocks))
        return m.head_forward(x, lengths)


def cut_module(model: nn.Module, name: str) -> tuple[torch.fx.GraphModule, torch.fx.GraphModule]:
    """Cut a user's own module after the submodule called `name` (a leaf or a container such as a whole
    encoder: everything inside it runs on the device): (edge, server) graph modules.

    edge(*inputs) returns the output of `name`; server(features) returns the model's output. The model is
    traced with torch.fx, so it must be symbolically traceable. Nothing may bypass the cut: if any
    computation after the cut uses a value from before it (a skip connection over the cut), AcomError.
    Put a ResidualVQ between the halves to train it as a split model (`cut_layout` says its axes).
    """
    valid = [n for n, _ in model.named_modules() if n]
    if name not in valid:
        raise AcomError(f"no submodule {name!r} in the model; its submodules: {', '.join(valid)}")

    class _CutTracer(torch.fx.Tracer):  # the cut module stays one call, however much it contains
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return qualname == name or super().is_leaf_module(m, qualname)

    gm = torch.fx.GraphModule(model, _CutTracer().trace(model))
    nodes = list(gm.graph.nodes)
    cut = next((n for n in nodes if n.op == "call_module" and n.target == name), None)
    if cut is None:
        called = [n.target for n in nodes if n.op == "call_module"]
        raise AcomError(f"submodule {name!r} is not called by the model's forward; called: {', '.join(called)}")
    before = set(nodes[: nodes.index(cut) + 1])
    for node in nodes[nodes.index(cut) + 1:]:
        for arg in node.all_input_nodes:
            if arg in before and arg is not cut and arg.op != "get_attr":
                raise AcomError(f"{node.name} after the cut uses {arg.name} from before it: a connection "
                                f"bypasses the cut at {name!r}; choose a submodule that all data flows through")
    return _graph_part(gm, nodes[: nodes.index(cut) + 1], cut), _server_part(gm, nodes, cut)


def cut_layout(edge: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor, time_dim: int = -1) -> str:
    """"BDT" or "BTD": where time lies in the edge's output [B, D, T] or [B, T, D], found by running `example`
    and a copy of it with a third of the frames of its axis `time_dim` cut off. AcomError naming the shapes
    found when the output is not 3-D or no single axis follows the input's length."""
    short = example.narrow(time_dim, 0, max(1, example.shape[time_dim] * 2 // 3))
    with torch.no_grad():
        a, b = edge(example), edge(short)
    if not (isinstance(a, torch.Tensor) and a.dim() == 3):
        raise AcomError(f"the output at the cut is {getattr(a, 'shape', type(a).__name__)}: expected [B, D, T] or "
                        f"[B, T, D] (a batch of frame sequences) to quantize frame by frame")
    moved = [i for i in (1, 2) if a.shape[i] != b.shape[i]]
    if len(moved) != 1:
        raise AcomError(f"the output at the cut is {tuple(a.shape)} for {tuple(example.shape)} and {tuple(b.shape)} "
                        f"for {tuple(short.shape)}: expected [B, D, T] or [B, T, D], one axis following the input's "
                        f"length")
    return "BDT" if moved == [2] else "BTD"


def _graph_part(gm: torch.fx.GraphModule, keep: list[torch.fx.Node], out: torch.fx.Node) -> torch.fx.GraphModule:
    graph, env = torch.fx.Graph(), {}
    for node in keep:
        env[node] = graph.node_copy(node, lambda n: env[n])
    graph.output(env[out])
    return torch.fx.GraphModule(gm, graph)


def _server_part(gm: torch.fx.GraphModule, nodes: list[torch.fx.Node], cut: torch.fx.Node) -> torch.fx.GraphModule:
    graph = torch.fx.Graph()
    env = {cut: graph.placeholder("features")}

    def lookup(n: torch.fx.Node) -> torch.fx.Node:
        if n not in env:  # a parameter or buffer fetched before the cut: fetch it again on this side
            env[n] = graph.node_copy(n, lookup)
        return env[n]

    for node in nodes[nodes.index(cut) + 1:]:
        if node.op != "placeholder":
            env[node] = graph.node_copy(node, lookup)
    return torch.fx.GraphModule(gm, graph)


def make_rvq(model: BlockModel, split_layer: int, codebook_sizes: tuple[int, ...], **kw) -> ResidualVQ:
    """A quantizer sized for the cut after `split_layer`."""
    return ResidualVQ(RVQConfig(dim=model.cut_dim(split_layer), codebook_sizes=tuple(codebook_sizes), **kw))
