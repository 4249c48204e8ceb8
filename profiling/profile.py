"""`acom profile --bundle DIR`: what a bundle's device half costs per second of audio on its board, beside the
codec pipelines the device could run instead, over each radio link.

Per layer: MACs, parameters, activations (profiling/layers.py). Memory: what the export measured (the runtime's
planned memory or arena, the model's flash, the firmware's sections). Measured execution: instructions per second
of audio under the board's emulator (profiling/measure.py). Energy per second of audio per link: compute + radio
(profiling/energy.py), and the ratio of each codec pipeline's to ACoM's. The shipped models are demonstrations
trained on synthetic audio; the costs are the method's and the pipeline's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from acom.boards import load_board
from acom.boards.link import known_links, load_link
from acom.errors import AcomError
from acom.profiling import energy, layers, measure
from acom.runtime.bundle import read_manifest
from acom.runtime.manifest import Manifest

# the codec pipelines beside ACoM: (name, payload bit/s, how its compute is known)
CODEC2_MODES = (("codec2-700C", 700, "700C"), ("codec2-1200", 1200, "1200"), ("codec2-3200", 3200, "3200"))
NEURAL = (("dac-16k", 1), ("encodec-24k", 2))  # the lowest-rate point of each (baselines/neural_codecs.py)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="acom profile", description="MACs, memory, measured instructions and energy per second of audio of a "
        "bundle's device half on its board, beside codec pipelines, per radio link.",
        epilog="Compute figures from instruction counts are lower bounds (QEMU counts instructions, not cycles); "
        "every energy figure names its source in the board or link profile; a missing one prints 'unknown' "
        "with the field. Exit codes: 0, 2 bad input.")
    p.add_argument("--bundle", type=Path, required=True, help="bundle folder written by acom-export")
    p.add_argument("--link", action="append", choices=known_links(), help="radio link (repeat; default: all)")
    p.add_argument("--packet-s", type=float, default=1.0, help="seconds of audio per packet (default 1)")
    p.add_argument("--no-measure", action="store_true", help="skip the emulator runs (instructions 'unknown')")
    p.add_argument("--json", action="store_true", help="the whole profile as one JSON object")
    p.add_argument("--png", type=Path, help="write a stacked bar chart of energy per second of audio")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.packet_s <= 60:
        raise AcomError(f"--packet-s {args.packet_s}: expected seconds, more than 0, at most 60")
    result = profile(args.bundle, args.link or known_links(), args.packet_s, measure_runs=not args.no_measure)
    if args.png:
        from acom.profiling.plot import energy_png
        energy_png(result, args.png)
    print(json.dumps(result) if args.json else render(result))
    return 0


def profile(bundle: Path, links: list[str], packet_s: float, measure_runs: bool = True) -> dict:
    """The profile of `bundle` as a JSON-ready dict (see the module docstring)."""
    m = read_manifest(bundle)
    board = load_board(m.board)
    width = measure.issue_width(board)
    rows = layers.layer_rows(m, board)
    macs = rows[-1]["macs_per_s"]
    with tempfile.TemporaryDirectory(prefix="acom-profile-") as tmp:
        ran = measure.device_instructions(bundle, m, board, Path(tmp)) if measure_runs else None
        etdump = measure.etdump_operators(bundle, m, Path(tmp)) if measure_runs and board.kind == "linux" else None
        codec2 = {mode: measure.codec2_instructions(mode, Path(tmp)) for _, _, mode in CODEC2_MODES} \
            if measure_runs else {}
    per_s = ran["per_s"] if ran else None
    acom_compute = energy.compute_w(board, per_s, width)
    systems = [("acom", m.nominal_bps, acom_compute, "measured (instructions)" if ran else "not measured")]
    for name, bps, mode in CODEC2_MODES:
        systems.append((name, bps, energy.compute_w(board, codec2.get(mode), width),
                        "measured on x86-64 (c2enc under qemu-x86_64): a proxy for an Arm core" if mode in codec2
                        else "not measured"))
    systems.append(("opus-6k", 6000, (None, "unknown: Opus's encoder is not measured here"), "unknown"))
    neural = _neural_costs()
    for name, n_q in NEURAL:
        row = neural[(name, n_q)]
        systems.append((f"{name} (n_q {n_q})", row["bitrate_bps"], energy.mac_w(board, row["device_macs_per_s"]),
                        "counted MACs (published architecture) x pJ/MAC"))
    per_link = {}
    for name in links:
        link = load_link(name)
        table = [energy.system_row(s, board, link, bps, packet_s, c, how) for s, bps, c, how in systems]
        base = table[0]["total_w"]
        for r in table:
            r["vs_acom"] = None if base is None or r["total_w"] is None else r["total_w"] / base
        per_link[name] = {"description": link.description, "systems": table}
    vela = layers.vela_blocks(m)
    if vela is not None:  # the NPU's own count beside the model's, per block (one window: per second of audio)
        window_s = m.graph.window_samples / m.sample_rate
        for r in rows:
            found = r["layer"].startswith("block ") and int(r["layer"].split()[1])
            if found is not False and found in vela["per_block"]:
                r["npu_macs_per_s"] = vela["per_block"][found]["macs"] / window_s
                r["npu_cycles_per_s"] = vela["per_block"][found]["cycles"] / window_s
    return {"bundle": str(bundle), "board": board.name, "task": m.task, "n_q": m.n_q, "layers": rows, "vela": vela,
            "etdump": etdump,
            "memory": _memory(m), "measured": ran, "issue_width": width,
            "share_of_clock_lower_bound": None if per_s is None else per_s / width / (board.clock_mhz * 1e6),
            "compute_from_macs": dict(zip(("watts", "how"), energy.mac_w(board, macs))),
            "idle": dict(zip(("watts", "how"), energy.idle_w(board))), "packet_s": packet_s, "links": per_link,
            "note": "demonstration models trained on synthetic audio; compute from instructions is a lower bound"}


def _neural_costs() -> dict[tuple[str, int], dict]:
    """The neural codecs' counted costs by (system, n_q) (baselines/neural_codecs.py builds each encoder once)."""
    from acom.baselines.neural_codecs import neural_codec_costs
    return {(r["system"], r["n_q"]): r for r in neural_codec_costs()}


def _memory(m: Manifest) -> dict:
    out = {"model_ram_bytes": m.costs.get("peak_memory_bytes"), "model_flash_bytes": m.costs.get("model_flash_bytes")}
    for a in m.artifacts:
        for key in ("planned_memory_bytes", "arena_bytes"):
            if key in a.facts:
                out[f"{a.file}: {key}"] = a.facts[key]
    fw = getattr(m, "firmware", None)
    if fw is not None and fw.written:
        out["firmware_sections"] = fw.sections
    return out


def _w(x: float | None) -> str:
    return "unknown" if x is None else f"{x * 1e3:.3g} mW"


def render(p: dict) -> str:
    """The profile as text tables."""
    lines = [f"{p['board']}: {p['task']} bundle, n_q {p['n_q']} ({p['note']})", "",
             f"{'layer':<48} {'MAC/s':>12} {'params':>9} {'act. bytes':>10}"]
    lines += [f"{r['layer']:<48} {r['macs_per_s'] / 1e6:>10.3f} M {r['params']:>9} {r['activation_bytes']:>10}"
              + (f"   NPU (vela): {r['npu_macs_per_s'] / 1e6:.3f} M MAC/s, {r['npu_cycles_per_s'] / 1e3:.0f} k cycles/s"
                 if "npu_macs_per_s" in r else "") for r in p["layers"]]
    if p.get("vela"):
        v = p["vela"]
        lines.append(f"vela: {v['npu_ops']} operations on the NPU, {v['cpu_ops']} on the CPU; {v['cycles']} NPU "
                     f"cycles a window at {v['clock_hz'] / 1e6:g} MHz (dilated convolutions count their zero taps)")
    lines += ["", "memory: " + ", ".join(f"{k} {v}" for k, v in p["memory"].items() if v is not None)]
    if p["measured"]:
        ran = p["measured"]
        stages = ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in ran["stages"].items())
        lines.append(f"measured: {ran['per_s'] / 1e6:.2f} M instructions per second of audio ({ran['how']}"
                     f"{'; ' + stages if stages else ''}); at least {p['share_of_clock_lower_bound']:.2%} of the clock")
        if ran.get("functions_per_s"):
            lines.append("  by function (M/s): " + ", ".join(f"{k} {v / 1e6:.2f}"
                                                          for k, v in list(ran["functions_per_s"].items())[:8]))
    if p.get("etdump"):
        ops = ", ".join(f"{k} {v:.2f}" for k, v in list(p["etdump"]["ms_per_s_audio"].items())[:6])
        lines.append(f"ExecuTorch ETDump on this machine (x86; ms per second of audio): {ops}")
    lines.append(f"compute from MACs (cross-check): {_w(p['compute_from_macs']['watts'])} "
                 f"({p['compute_from_macs']['how']}); board idle: {_w(p['idle']['watts'])} ({p['idle']['how']})")
    for name, link in p["links"].items():
        lines += ["", f"{name}: {link['description']}",
                  f"  {'system':<22} {'bit/s wire':>10} {'air time':>9} {'compute':>12} {'radio':>12} {'total':>12} "
                  f"{'x ACoM':>8}"]
        for r in link["systems"]:
            ratio = "" if r["vs_acom"] is None else f"{r['vs_acom']:.2f}"
            verdict = " (ACoM loses)" if r["vs_acom"] is not None and r["vs_acom"] < 1 else ""
            air = f"{r['air_time_share']:.1%}" + ("!" if r["air_time_share"] > 1 else "")
            lines.append(f"  {r['system']:<22} {r['bps_on_wire']:>10} {air:>9} {_w(r['compute_w']):>12} "
                         f"{_w(r['radio_w']):>12} {_w(r['total_w']):>12} {ratio:>8}{verdict}")
        if name == "lora":
            lines.append("  (air time: the link's share of the air; over 100% (!) the link cannot carry it; EU868 "
                         "allows a device 1%)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
