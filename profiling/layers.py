"""Per-layer cost of a bundle's edge half, counted from its model (the graph export lowers is built from the same
blocks, core/split.py ``EdgeEncoder``): the front end as the board runs it, each block up to the cut, the RVQ's
nearest-codeword search. MACs per second of audio (torch's FLOP counter on one second), parameters, and the
int8 activation a block writes over one of the board's windows.
"""

from __future__ import annotations

from acom.boards import Board
from acom.core.macs import block_costs, frontend_fft_macs_per_s
from acom.core.models import build_model
from acom.runtime.manifest import Manifest


def layer_rows(manifest: Manifest, board: Board) -> list[dict]:
    """Rows {"layer", "macs_per_s", "params", "activation_bytes"} from the front end to the RVQ, then "total"
    (activation_bytes there: the largest block input plus output over a window, a lower bound on the peak)."""
    import torch

    from acom.core.features import FrontEndConfig
    from acom.core.macs import _macs

    model = build_model(manifest.task, manifest.model.config)
    cfg = FrontEndConfig(**{k: v for k, v in manifest.frontend.config.items()
                            if k in FrontEndConfig.__dataclass_fields__})
    window_s = manifest.graph.window_samples / manifest.sample_rate
    if manifest.frontend.runs_in == "graph":  # the STFT as a fixed convolution, as exported
        wave = torch.zeros(1, cfg.sample_rate + cfg.win_length - cfg.hop_length)
        front = _macs(model.frontend, wave)
        how = "log-mel (STFT as a convolution, in the graph)"
    else:
        front = frontend_fft_macs_per_s(cfg)
        how = "log-mel (real FFT, in the firmware)"
    rows = [{"layer": how, "macs_per_s": front, "params": 0,
             "activation_bytes": int(cfg.n_mels * cfg.frame_rate * window_s)}]
    for b in block_costs(model, window_s)[: manifest.model.split_layer + 1]:
        written = int(b["out_channels"] * b["out_frame_rate"] * window_s)
        rows.append({"layer": f"block {b['index']} ({b['block']})", "macs_per_s": b["macs_per_s"],
                     "params": b["params"], "activation_bytes": written})
    rvq = _rvq(manifest)
    feats = torch.zeros(1, rvq.config.dim, round(manifest.frame_rate * rvq.config.time_pool))  # one second at the cut
    sizes = "/".join(str(k) for k in rvq.config.codebook_sizes[: manifest.n_q])
    rows.append({"layer": f"RVQ encode ({manifest.n_q} x {sizes})",
                 "macs_per_s": _macs(lambda z: rvq.encode(z, manifest.n_q), feats),
                 "params": sum(p.numel() for p in rvq.parameters()),
                 "activation_bytes": int(4 * manifest.n_q * manifest.frame_rate * window_s)})
    peak = max(a["activation_bytes"] + b["activation_bytes"] for a, b in zip(rows, rows[1:]))
    rows.append({"layer": "total", "macs_per_s": sum(r["macs_per_s"] for r in rows),
                 "params": sum(r["params"] for r in rows), "activation_bytes": peak})
    return rows


def _rvq(manifest: Manifest):
    """An untrained ResidualVQ of the bundle's settings (the cost depends on the shapes only)."""
    from acom.core.rvq import ResidualVQ, RVQConfig
    cfg = dict(manifest.model.rvq_config)
    cfg["codebook_sizes"] = tuple(cfg["codebook_sizes"])
    return ResidualVQ(RVQConfig(**{k: v for k, v in cfg.items() if k in RVQConfig.__dataclass_fields__}))


def vela_blocks(manifest: Manifest) -> dict | None:
    """vela's per-layer report of an Ethos-U bundle grouped by model block: {"per_block": {index: {"macs",
    "cycles"}}, "other": {"macs", "cycles"} (operations no block names), "cycles", "npu_ops", "cpu_ops"}; None for a
    bundle without a vela artifact (or one exported before the report was kept)."""
    import re
    vela = next((a.facts["vela"] for a in manifest.artifacts if "vela" in a.facts), None)
    if not vela or not vela.get("per_layer"):
        return None
    per_block: dict[int, dict] = {}
    other = {"macs": 0, "cycles": 0}
    for row in vela["per_layer"]:
        found = re.search(r"acom\.core\.blocks\.\w+?_(\d+)", row["name"])
        slot = per_block.setdefault(int(found.group(1)), {"macs": 0, "cycles": 0}) if found else other
        slot["macs"] += row["macs"]
        slot["cycles"] += row["cycles"]
    return {"per_block": per_block, "other": other, "cycles": vela["cycles"], "clock_hz": vela["clock_hz"],
            "npu_ops": len(vela["npu_ops"]), "cpu_ops": len(vela["cpu_ops"])}
