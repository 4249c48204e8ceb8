"""Flash, RAM, instructions and energy of one edge configuration on a board, estimated WITHOUT lowering.

Flash and RAM are linear in the counts of ``plan_census.Census`` (int8 weights, per-channel biases and scales,
float values, operators, the largest layer's live activations), one fit per runtime figure that
``acom.export.pipeline._footprint`` reports:

- microcontrollers: TFLite Micro's arena (RAM) and the ``.tflite`` size (flash); on an Ethos-U board vela's SRAM
  and the vela-compiled ``.tflite`` instead;
- Linux boards: ExecuTorch's planned memory (RAM) and the larger of ``.pte`` and ``.tflite`` (flash).

The coefficients were fitted by least squares (``bench/plan_check.py --sweep``) on edge graphs lowered with the
exporters' own functions (``acom.export.litert``, ``executorch``, ``micro``) at every cut of both shipped models
and several n_q; the fit's spread and its check against real ``acom-export`` runs are in ``reports/plan_check.json``.
Instructions per MAC per core come from measured runs (``reports/device_cost.json``, ``reports/edge_runner.json``).
"""

from __future__ import annotations

from dataclasses import dataclass

from acom.boards import Board
from acom.profiling.energy import compute_w, mac_w
from acom.profiling.plan_census import Census


@dataclass(frozen=True)
class Fit:
    """bytes = constant + sum(coef[field] * census.field) for one runtime figure."""

    what: str
    constant: float
    coef: dict[str, float]

    def bytes(self, c: Census) -> int:
        return int(round(self.constant + sum(k * getattr(c, f) for f, k in self.coef.items())))


# Least-squares fits (bench/plan_check.py --sweep; points, residuals and the estimate/real ratio of each in
# reports/plan_fit.json) over edge graphs lowered with export's own functions: the shipped ASR model cut after
# blocks 0..2 (0..4 for ExecuTorch) and the classifier after blocks 0..6, n_q 1..3 (9 to 15 points a figure).
# MCU graphs start from log-mel over 1 s, Linux graphs from the waveform over 4 s (the shipped profiles' windows).
# Spread of estimate/real over those points:
# tflite 0.98..1.03, vela flash 0.95..1.16, pte 0.99..1.00, Linux tflite 0.99..1.01, ExecuTorch plan 0.99..1.01;
# microcontroller RAM is coarser: TFLM arena 0.54..2.05 (0.96..1.12 at the shipped cuts), vela SRAM 0.62..1.42.
FITS: dict[str, Fit] = {
    "tflite": Fit("the .tflite flatbuffer (int8 layers, float RVQ)", 4118.0,
                  {"int8_weights": 0.949, "channels": 47.572, "float_values": 4.038, "ops": 325.158}),
    "tflm_arena": Fit("TFLite Micro arena (RecordingMicroAllocator total, 64-bit host)", 0.0,
                      {"peak_io": 2.007, "channels": 50.831}),
    "vela_flash": Fit("the vela-compiled .tflite (command stream, weights, CPU operators)", 7958.4,
                      {"int8_weights": 1.0, "float_values": 4.0, "channels": 29.655, "ops": 475.851}),
    "vela_sram": Fit("vela's SRAM (feature maps and weight buffers, Shared_Sram mode)", 7601.1,
                     {"largest_weight": 0.892, "ops": 262.934}),
    "pte": Fit("the ExecuTorch .pte (XNNPACK-delegated)", -1526.0,
               {"int8_weights": 1.0, "float_values": 4.0, "channels": 4.048, "ops": 749.365}),
    "tflite_linux": Fit("the .tflite with the front end in float", -7245.0,
                        {"int8_weights": 1.0, "float_values": 4.0, "channels": 23.072, "ops": 841.814}),
    "pte_planned": Fit("ExecuTorch planned memory (non-constant buffers)", 0.0, {"peak_io": 1.781, "ops": 387.195}),
}


@dataclass(frozen=True)
class Footprint:
    """Estimated bytes the board holds for the model, as export's fit check measures them."""

    ram: int
    flash: int
    ram_what: str
    flash_what: str


def footprint(board: Board, c: Census) -> Footprint:
    """RAM and flash of the configuration counted in ``c`` on ``board`` (as ``pipeline._footprint`` takes them)."""
    if board.kind == "mcu":
        if "ethos-u-vela" in board.runtimes:
            ram, flash = FITS["vela_sram"], FITS["vela_flash"]
        else:
            ram, flash = FITS["tflm_arena"], FITS["tflite"]
        return Footprint(ram.bytes(c), flash.bytes(c), ram.what, flash.what)
    flashes = [FITS[k] for k, rt in (("pte", "executorch-xnnpack"), ("tflite_linux", "litert")) if rt in board.runtimes]
    flash = max(flashes, key=lambda f: f.bytes(c))
    ram = FITS["pte_planned"]
    return Footprint(ram.bytes(c), flash.bytes(c), ram.what, flash.what)


@dataclass(frozen=True)
class CoreRate:
    """Executed instructions per MAC of one core, for the graph and for the firmware's FFT front end."""

    graph: float
    frontend: float | None  # None: the front end is inside the graph (Linux), counted with it
    source: str


# graph: instructions/s of the graph (layers + RVQ) / its MAC/s; frontend: the C front end's instructions/s / the
# FFT front end's MAC/s (1.0644e6 at 16 kHz). The shipped ASR model (8.19 M MAC/s of layers + RVQ) is used for
# the MCUs because the layers dominate there (the classifier's 0.76 M MAC/s graph pays more per MAC in call
# overhead: 3.8 instructions per MAC on a Cortex-M4).
CORE_RATES: dict[str, CoreRate] = {
    "cortex-m4": CoreRate(23702459 / 8.192e6, 4385746 / 1.0644e6,
                          "reports/device_cost.json: asr on cortex-m4 under qemu-system-arm (instructions, "
                          "not cycles)"),
    "cortex-m7": CoreRate(23566827 / 8.192e6, 4232519 / 1.0644e6,
                          "reports/device_cost.json: asr on cortex-m7 under qemu-system-arm (instructions, "
                          "not cycles)"),
    "cortex-m55": CoreRate(12612485 / 8.192e6, 4111174 / 1.0644e6,
                           "reports/device_cost.json: asr on the Cortex-M55 CPU under qemu-system-arm (MVE kernels; "
                           "the Ethos-U55 is not emulated, so this is the graph on the CPU alone)"),
    "cortex-a72": CoreRate(28417369 / 29.78e6, None,
                           "reports/edge_runner.json: rpi4 bundle (front end in the graph) under qemu-aarch64 "
                           "-cpu cortex-a72, ExecuTorch + XNNPACK, per MAC of the graph as exported"),
    "cortex-a76": CoreRate(26539674 / 29.78e6, None,
                           "reports/edge_runner.json: rpi5 bundle under qemu-aarch64 -cpu cortex-a76, per MAC as "
                           "exported"),
}


def instructions_per_s(board: Board, graph_macs: float, frontend_macs: float) -> tuple[float | None, str]:
    """(instructions per second of audio, where the factor comes from); None when the board's core was never
    measured. ``graph_macs`` is what the graph runs (with the front end on Linux boards), ``frontend_macs`` the
    firmware's FFT front end (microcontrollers)."""
    rate = CORE_RATES.get(board.emulator.cpu)
    if rate is None:
        return None, f"no measured instructions per MAC for core {board.emulator.cpu!r}; known: {sorted(CORE_RATES)}"
    total = graph_macs * rate.graph + (frontend_macs * rate.frontend if rate.frontend is not None else 0.0)
    return total, f"{rate.graph:.2f} instructions per graph MAC" + (
        f", {rate.frontend:.2f} per front-end MAC" if rate.frontend is not None else "") + f" ({rate.source})"


def energy_uj_per_s(board: Board, instructions: float | None, macs: float) -> dict:
    """Energy per second of audio in microjoules, through ``profiling.energy`` (the one home of these rules):
    ``clock_share`` (the instructions' share of the clock at one instruction a cycle x the board's run power) and
    ``per_mac`` (MACs x ``energy_per_mac_pj``), each with how it was computed."""
    watts, how = compute_w(board, instructions, 1)
    per_mac, per_mac_how = mac_w(board, macs)
    return {"clock_share": None if watts is None else watts * 1e6, "clock_share_how": how,
            "per_mac": None if per_mac is None else per_mac * 1e6, "per_mac_how": per_mac_how}
