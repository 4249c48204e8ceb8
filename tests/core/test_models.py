"""Models, the cut, and the device budget: shapes, limited right context, MAC/s, cutting a user's module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from acom.core.macs import edge_macs_per_second
from acom.core.models import AsrConfig, ClassifierConfig, build_model, default_split_layer
from acom.core.split import SplitModel, cut_layout, cut_module, make_rvq
from acom.errors import AcomError

TINY_ASR = AsrConfig(n_mels=40, stem_channels=16, edge_dim=32, edge_blocks=1, dim=48, blocks=1, heads=2,
                     conv_kernel=5, left_context=8, right_context=2, dropout=0.0)
TINY_AC = ClassifierConfig(channels=16, edge_blocks=1, pool=5, server_channels=24, server_blocks=1)


def test_shapes_and_lengths() -> None:
    asr = build_model("asr", TINY_ASR).eval()
    feats, lengths = torch.randn(3, 40, 400), torch.tensor([400, 250, 120])
    logp, out_len = asr(feats, lengths)
    assert logp.shape == (3, 100, 29) and out_len.tolist() == [100, 63, 30]
    assert torch.allclose(logp.exp().sum(-1), torch.ones(3, 100), atol=1e-5)
    ac = build_model("ac", TINY_AC).eval()
    logits, _ = ac(feats, lengths)
    assert logits.shape == (3, 10)
    assert ac.frame_rate_at(default_split_layer(ac)) == 5.0 and asr.frame_rate_at(2) == 25.0


def test_padding_does_not_change_an_utterance() -> None:
    """A batch-padded utterance scores as it does alone (attention masks the padding)."""
    torch.manual_seed(0)
    asr = build_model("asr", TINY_ASR).eval()
    short = torch.randn(1, 40, 200)
    alone, _ = asr(short, torch.tensor([200]))
    padded = torch.cat([short, torch.zeros(1, 40, 200)], dim=2)
    batch, _ = asr(torch.cat([padded, torch.randn(1, 40, 400)]), torch.tensor([200, 400]))
    # the last frames look ahead into the padding through the stem and conv modules (2 frames per block);
    # 10 frames (0.4 s) before the end everything must match
    assert torch.allclose(batch[0, :40], alone[0, :40], atol=1e-4)


@pytest.mark.parametrize("task, config", [("asr", TINY_ASR), ("ac", TINY_AC)])
def test_device_part_has_limited_right_context(task: str, config) -> None:
    """Changing audio beyond a frame's bounded look-ahead leaves that frame's cut features unchanged."""
    torch.manual_seed(0)
    model = build_model(task, config).eval()
    split = SplitModel(model, default_split_layer(model), make_rvq(model, default_split_layer(model), (8,)))
    edge = split.edge()
    wave = torch.randn(1, 16000 * 3)
    changed = wave.clone()
    changed[:, 16000 * 2:] = torch.randn(1, 16000)
    a, b = edge.features(wave), edge.features(changed)
    frames_per_s = a.shape[-1] / 3
    safe = int(frames_per_s * 1.7)  # 0.3 s before the change covers every block's look-ahead
    assert torch.allclose(a[..., :safe], b[..., :safe], atol=1e-5)
    assert not torch.allclose(a[..., -2:], b[..., -2:], atol=1e-3)


def test_default_edge_budgets() -> None:
    """The default device parts fit Cortex-M budgets: ASR <= 10 M MAC/s, classification <= 2 M MAC/s."""
    for task, budget in (("asr", 10e6), ("ac", 2e6)):
        model = build_model(task)
        layer = default_split_layer(model)
        rvq = make_rvq(model, layer, (64, 64))
        macs = edge_macs_per_second(SplitModel(model, layer, rvq).edge())
        assert 0 < macs["total"] <= budget, (task, macs)
        assert macs["frontend_as_exported"] > 10 * macs["frontend_fft"]


def test_bad_split_layer_and_config() -> None:
    model = build_model("asr", TINY_ASR)
    with pytest.raises(AcomError, match=r"split layer 9 does not exist.*0\.\.2"):
        SplitModel(model, 9, None)
    with pytest.raises(AcomError, match="no fields"):
        build_model("asr", {"layers": 3})
    with pytest.raises(AcomError, match="unknown task"):
        build_model("kws")
    with pytest.raises(AcomError, match="codebook"):
        make_rvq(model, 1, (1,))


class UserNet(nn.Module):
    def __init__(self, skip: bool = False) -> None:
        super().__init__()
        self.skip = skip
        self.enc1, self.enc2 = nn.Conv1d(8, 16, 3, padding=1), nn.Conv1d(16, 16, 3, padding=1)
        self.dec = nn.Conv1d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.enc1(x))
        y = self.enc2(h)
        return self.dec(y + h if self.skip else y)


def test_cut_a_users_module_by_name() -> None:
    net = UserNet().eval()
    edge, server = cut_module(net, "enc2")
    x = torch.randn(2, 8, 50)
    assert edge(x).shape == (2, 16, 50)
    assert torch.allclose(server(edge(x)), net(x), atol=1e-6)
    with pytest.raises(AcomError, match="bypasses the cut"):
        cut_module(UserNet(skip=True), "enc2")
    with pytest.raises(AcomError, match="no submodule 'enc9' in the model; its submodules: enc1, enc2, dec"):
        cut_module(net, "enc9")
    assert cut_layout(edge, x) == "BDT"


class Encoded(nn.Module):
    """A model whose encoder is a container (cut after all of it) and whose cut output is [B, T, D]."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv1d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv1d(16, 12, 3, padding=1))
        self.proj = nn.Linear(12, 12)
        self.head = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.encoder(x).transpose(1, 2))  # [B, T, 12]
        return self.head(h).mean(1)


def test_cut_after_a_container_and_the_layouts_at_the_cut() -> None:
    net = Encoded().eval()
    x = torch.randn(2, 8, 30)
    edge, server = cut_module(net, "encoder")  # a container: all of it on the device side
    assert edge(x).shape == (2, 12, 30) and torch.allclose(server(edge(x)), net(x), atol=1e-6)
    assert sum(1 for n in edge.graph.nodes if n.op == "call_module") == 1  # called as one
    edge, server = cut_module(net, "proj")
    assert cut_layout(edge, x) == "BTD" and torch.allclose(server(edge(x)), net(x), atol=1e-6)
    with pytest.raises(AcomError, match=r"output at the cut is \(2, 30, 30\) for \(2, 8, 30\)"):
        cut_layout(lambda v: v.transpose(1, 2) @ v, x)  # [B, T, T]: both axes follow the length
    pooled = nn.Sequential(Encoded(), nn.Identity())
    edge, _ = cut_module(pooled, "0")
    with pytest.raises(AcomError, match=r"output at the cut is torch.Size\(\[2, 5\]\)"):
        cut_layout(edge, x)
