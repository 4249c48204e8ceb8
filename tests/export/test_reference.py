"""The quantized reference with its biases on the int32 grid the runtimes use, and the classifier's edge.pte
really int8 (its conv+ReLU pairs were left float before)."""

from __future__ import annotations

import torch

from acom.export.reference import _attr, snap_biases


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.Sequential(torch.nn.Conv1d(4, 8, 3, padding=1), torch.nn.ReLU(),
                                          torch.nn.Conv1d(8, 8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def test_biases_land_on_the_int32_grid_and_the_original_is_kept() -> None:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(0)
    model, x = _Tiny().eval(), torch.randn(2, 4, 16)
    with torch.no_grad():
        for conv in (model.blocks[0], model.blocks[2]):
            conv.bias.add_(torch.rand_like(conv.bias) * 1e-3)  # off any grid
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(model, (x,)).module(), quantizer)
    prepared(x)
    quantized = convert_pt2e(prepared)
    before = {k: v.clone() for k, v in quantized.state_dict().items()}
    ref, n = snap_biases(quantized)
    assert n == 2
    moved = 0
    for node in ref.graph.nodes:
        if node.op == "call_function" and "conv1d" in str(node.target):
            xs, ws, b = node.args[0].args[1], _attr(ref, node.args[1].args[1].target), _attr(ref, node.args[2].target)
            steps = b.double() / (ws.double() * float(xs))
            assert torch.allclose(steps, steps.round(), atol=1e-3)
            moved += int((b != before[node.args[2].target]).sum())
    assert moved > 0  # the rounding changed something, in the copy only
    assert all(torch.equal(v, quantized.state_dict()[k]) for k, v in before.items())
    assert torch.allclose(ref(x), quantized(x), atol=0.05)


def test_the_classifier_edge_pte_is_int8(ac_bundle) -> None:
    _, manifest = ac_bundle
    pte = next(a for a in manifest["artifacts"] if a["file"] == "edge.pte")
    assert pte["reference_biases_on_int32_grid"] >= 3  # its three TDNN convs are quantized
    check = next(c for c in manifest["verification"]["checks"] if c["artifact"] == "edge.pte")
    assert min(check["agreement_vs_quantized_reference"]) >= 0.99
