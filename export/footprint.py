"""Flash and RAM of an edge configuration on a board, estimated WITHOUT lowering (``acom plan``; export refuses
early with it and names the nearest configuration that fits).

Flash and RAM are linear in the counts of ``census.Census`` (int8 weights, per-channel biases and scales, float
values, operators, the largest layer's live activations), one fit per runtime figure that
``acom.export.pipeline._footprint`` reports:

- microcontrollers: TFLite Micro's arena (RAM) and the ``.tflite`` size (flash); on an Ethos-U board vela's SRAM
  and the vela-compiled ``.tflite`` instead;
- Linux boards: ExecuTorch's planned memory (RAM) and the larger of ``.pte`` and ``.tflite`` (flash).

The coefficients were fitted by least squares (``bench/plan_check.py --sweep``) on edge graphs lowered with the
exporters' own functions (``acom.export.litert``, ``executorch``, ``micro``) at every cut of both shipped models
and several n_q; the fit's spread and its check against real ``acom-export`` runs are in ``reports/plan_check.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

from acom.boards import Board
from acom.core.split import SplitModel
from acom.export.census import Census, census

# An estimate over its figure's budget by more than this is over budget for real too: the widest spread of
# estimate / real over the fits (TFLite Micro's arena, 2.05; the flashes at most 1.16) stays under it.
SURE_OVER = 2.1


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




def nearest_fit(split: SplitModel, board: Board, n_q: int, window_samples: int) -> tuple[int, int, Footprint] | None:
    """The (cut, n_q, estimated footprint) nearest to ``split``'s cut and ``n_q`` whose estimated RAM and flash
    fit ``board``'s budgets (fewest cuts away, then fewest stages away); None if none does."""
    counts = census(split, split.rvq.n_q, window_samples, board.frontend == "graph")
    fitting = [(cut, q, fp) for (cut, q), c in counts.items() if _fits(board, fp := footprint(board, c))]
    if not fitting:
        return None
    return min(fitting, key=lambda r: (abs(r[0] - split.split_layer), abs(r[1] - n_q), r[2].ram + r[2].flash))


def sure_over(board: Board, fp: Footprint) -> bool:
    """Whether an estimate is over budget by more than the fits' spread: over for real, before any lowering."""
    return fp.ram > SURE_OVER * board.model_ram_budget_kib * 1024 or \
        fp.flash > SURE_OVER * board.model_flash_budget_kib * 1024


def _fits(board: Board, fp: Footprint) -> bool:
    return fp.ram <= board.model_ram_budget_kib * 1024 and fp.flash <= board.model_flash_budget_kib * 1024
