"""Instructions and energy of one edge configuration on a board, estimated WITHOUT lowering;
flash and RAM come from ``acom.export.footprint`` (re-exported here).

Instructions per MAC per core come from measured runs (``reports/device_cost.json``, ``reports/edge_runner.json``).
"""

from __future__ import annotations

from dataclasses import dataclass

from acom.boards import Board
from acom.export.footprint import FITS, Fit, Footprint, footprint  # noqa: F401 (plan's names for them)
from acom.profiling.energy import compute_w, mac_w


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
