"""``acom plan``: every cut point and number of RVQ stages of a checkpoint against a board's budgets, in seconds.

For each cut L (after block L, 0 = the stem) and n_q: MACs per second of audio (the front end as the board runs
it, blocks 0..L from ``core.macs.block_costs``, the RVQ search), flash and RAM estimated without lowering
(``plan_estimate``), instructions per second and the share of the clock, energy per second of audio, the nominal
bit/s, and the task metric where a trained run exists (``plan_runs``). Cuts other than the checkpoint's need the
RVQ retrained there: the same codebook sizes and code_dim are assumed. Nothing is exported or lowered.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from acom.boards import Board, load_board
from acom.boards.link import Link, load_link
from acom.codes.budget import nominal_bps
from acom.core.checkpoint import load_checkpoint
from acom.core.macs import block_costs, frontend_fft_macs_per_s
from acom.core.split import SplitModel
from acom.core.tasks import TASKS
from acom.errors import AcomError
from acom.export.census import census
from acom.profiling import plan_estimate as est
from acom.profiling.energy import radio
from acom.profiling.plan_rows import Plan, Row
from acom.profiling.plan_runs import RunResult, find_runs, match


def load_split(path: Path) -> tuple[SplitModel, dict]:
    """A split checkpoint with a quantizer: AcomError naming the field otherwise."""
    split, payload = load_checkpoint(path)
    if split.rvq is None:
        raise AcomError(f"{path}: field 'rvq_config' is empty: an uncut checkpoint (stage 1 of `acom train`) has "
                        "no quantizer at any cut; give a split checkpoint (split.pt, stage 2)")
    return split, payload


def _check_board(board: Board) -> None:
    """The board figures the plan divides by or multiplies with (load_board has already checked them)."""
    for key in ("model_ram_budget_kib", "model_flash_budget_kib", "macs_per_s_budget", "clock_mhz", "window_s"):
        if not getattr(board, key, None):
            raise AcomError(f"board {board.name}: field '{key}' is missing or zero; the plan needs it")


def make_plan(checkpoint: Path, board_name: str, runs: Path | None = None, n_q_max: int | None = None,
              link: str | None = None) -> Plan:
    """Every (cut, n_q) of the checkpoint on the board; see the module docstring."""
    t0 = time.perf_counter()
    board = load_board(board_name)
    _check_board(board)
    split, _ = load_split(checkpoint)
    cfg, task = split.rvq.config, TASKS[split.model.task]
    if n_q_max is not None and not 1 <= n_q_max <= cfg.n_q:
        raise AcomError(f"--n-q-max {n_q_max}: allowed 1..{cfg.n_q} (the checkpoint's RVQ stages)")
    n_q_max = n_q_max or cfg.n_q
    found = find_runs(runs, task) if runs is not None else None
    link_profile = load_link(link) if link is not None else None
    rows = _rows(split, board, n_q_max, found, task)
    if link_profile is not None:  # one packet per window: the graph codes a whole window at once
        for r in rows:
            r.radio = radio(link_profile, r.bps, board.window_s)
    plan = Plan(str(checkpoint), task.name, board.to_dict(), split.split_layer, list(cfg.codebook_sizes),
                cfg.code_dim, rows, _notes(split, board, link_profile, found))
    plan.front_axes = mark_front(rows)
    plan.recommendation = recommend(rows, board)
    plan.seconds = round(time.perf_counter() - t0, 2)
    return plan


def _rows(split: SplitModel, board: Board, n_q_max: int, runs: list[RunResult] | None, task) -> list[Row]:
    model, cfg = split.model, split.rvq.config
    graph_fe = board.frontend == "graph"
    window = int(round(board.window_s * model.frontend.cfg.sample_rate))
    counts = census(split, n_q_max, window, graph_fe)
    blocks = block_costs(model)
    fe = _frontend_macs(split, graph_fe)
    rows, block_macs = [], 0.0
    for b in blocks:
        cut, block_macs = b["index"], block_macs + b["macs_per_s"]
        for n_q in range(1, n_q_max + 1):
            c, rate = counts[(cut, n_q)], b["out_frame_rate"] / cfg.time_pool  # code frames a second
            # each stage projects (D x code_dim) and scores K codewords; all but the last project back (code_dim x D)
            d = b["out_channels"]
            rvq = rate * cfg.code_dim * (n_q * d + sum(cfg.codebook_sizes[:n_q]) + (n_q - 1) * d)
            macs = {"frontend": fe, "blocks": block_macs, "rvq": rvq, "total": fe + block_macs + rvq,
                    "frontend_kind": "stft-as-convolution (in the graph)" if graph_fe else "fft (firmware)"}
            fp = est.footprint(board, c)
            graph_macs = macs["total"] if graph_fe else block_macs + rvq
            instr, _ = est.instructions_per_s(board, graph_macs, 0.0 if graph_fe else fe)
            row = Row(cut, b["block"], n_q, cut == split.split_layer, rate, b["out_channels"],
                      nominal_bps(rate, cfg.codebook_sizes[:n_q]), macs, fp.ram, fp.flash, instr,
                      None if instr is None else instr / (board.clock_mhz * 1e6),
                      est.energy_uj_per_s(board, instr, macs["total"]), [])
            row.over = over_budget(board, row.macs["total"], row.ram_bytes, row.flash_bytes, row.clock_share)
            hit = match(runs, cut, n_q, tuple(cfg.codebook_sizes[:n_q]), task) if runs is not None else None
            if hit is not None:
                row.run = {"metric": task.metric, "value": hit.metric, "bps": hit.bps, "source": hit.source}
            rows.append(row)
    return rows


def _frontend_macs(split: SplitModel, graph_fe: bool) -> float:
    """Front end MAC/s as the board runs it: the STFT convolution as exported, or the firmware's FFT."""
    cfg = split.model.frontend.cfg
    if not graph_fe:
        return frontend_fft_macs_per_s(cfg)
    # the DFT bases as a convolution (real and imaginary rows) and the mel matmul, per frame, as
    # core.macs.edge_macs_per_second counts the exported front end (the squares are not MACs there)
    return cfg.frame_rate * (2 * cfg.n_freqs * cfg.win_length + cfg.n_mels * cfg.n_freqs)


def over_budget(board: Board, macs: float, ram: int, flash: int, clock_share: float | None) -> list[str]:
    """The budgets of ``board`` a configuration exceeds, each as 'what need > budget'."""
    over = []
    if macs > board.macs_per_s_budget:
        over.append(f"MACs {macs / 1e6:.1f} M/s > {board.macs_per_s_budget / 1e6:.1f} M/s")
    if ram > board.model_ram_budget_kib * 1024:
        over.append(f"RAM {ram / 1024:.0f} KiB > {board.model_ram_budget_kib} KiB")
    if flash > board.model_flash_budget_kib * 1024:
        over.append(f"flash {flash / 1024:.0f} KiB > {board.model_flash_budget_kib} KiB")
    if clock_share is not None and clock_share > 1:
        over.append(f"clock {clock_share:.0%} of {board.clock_mhz:g} MHz (not real time)")
    return over


def _notes(split: SplitModel, board: Board, link: Link | None, runs: list | None) -> list[str]:
    cfg = split.rvq.config
    notes = [f"cuts other than the checkpoint's ({split.split_layer}) need the RVQ retrained there: assumed "
             f"the same codebook sizes {list(cfg.codebook_sizes)} and code_dim {cfg.code_dim}",
             "flash and RAM are estimates (no lowering): " + ", ".join(
                 f"{k}: {v.what}" for k, v in est.FITS.items() if k in _figures(board)) +
             "; fitted and checked against real exports in reports/plan_check.json",
             "instructions: " + est.instructions_per_s(board, 1.0, 1.0)[1],
             "energy: the instructions' clock share (one a cycle) x the board's run power ([energy], each "
             "figure with its source), as acom profile computes it (profiling/energy.py)"]
    if link is not None:
        notes.append(f"radio over {link.name} ({link.description}): acom packets of one {board.window_s:g} s window, "
                     f"{link.energy_per_bit_j.value:g} J/bit ({link.energy_per_bit_j.source}), "
                     f"{link.energy_per_packet_j.value:g} J/packet ({link.energy_per_packet_j.source})")
    if runs is not None and not runs:
        notes.append("no trained run of this task under --runs: the metric column says 'no run'")
    if board.npu is not None:
        notes.append(f"instructions are for the {board.emulator.cpu} CPU alone; the {board.npu.accelerator} NPU "
                     "would run most of the graph")
    return notes


def _figures(board: Board) -> tuple[str, ...]:
    if board.kind == "mcu":
        return ("vela_sram", "vela_flash") if "ethos-u-vela" in board.runtimes else ("tflm_arena", "tflite")
    return ("pte_planned",) + tuple(k for k, rt in (("pte", "executorch-xnnpack"), ("tflite_linux", "litert"))
                                    if rt in board.runtimes)


def mark_front(rows: list[Row]) -> list[str]:
    """Mark the Pareto front (no other row at most as costly on every axis and better on one); returns the axes:
    cost and bit/s and the metric among rows with a run, else cost, bit/s, flash and RAM."""
    with_runs = [r for r in rows if r.run is not None]
    pool = with_runs or rows
    if with_runs:
        sign = -1 if not TASKS_LOWER.get(with_runs[0].run["metric"], True) else 1
        axes, key = ["cost", "bps", with_runs[0].run["metric"]], lambda r: (r.cost, r.bps, sign * r.run["value"])
    else:
        axes, key = ["cost", "bps", "flash", "ram"], lambda r: (r.cost, r.bps, r.flash_bytes, r.ram_bytes)
    points = [key(r) for r in pool]
    for r, p in zip(pool, points):
        r.front = not any(q != p and all(a <= b for a, b in zip(q, p)) for q in points)
    return axes


TASKS_LOWER = {t.metric: t.lower_is_better for t in TASKS.values()}


def recommend(rows: list[Row], board: Board) -> str:
    """One line: the cheapest configuration that fits, and with runs the best metric that fits."""
    fit = [r for r in rows if r.fits]
    if not fit:
        best = min(rows, key=lambda r: (len(r.over), r.ram_bytes + r.flash_bytes))
        return f"nothing fits board {board.name}; closest: {best.name()} ({'; '.join(best.over)})"
    cheap = min(fit, key=lambda r: (r.cost, r.bps))
    line = f"cheapest that fits {board.name} in real time: {cheap.name()} ({cheap.bps:.0f} bit/s)"
    ran = [r for r in fit if r.run is not None]
    if ran:
        lower = TASKS_LOWER[ran[0].run["metric"]]
        top = (min if lower else max)(ran, key=lambda r: r.run["value"])
        line += f"; best {top.run['metric']} that fits: {top.name()} ({top.run['value']:.3f} at {top.bps:.0f} bit/s)"
    return line


def nearest_fitting(split: SplitModel, board_name: str, n_q: int) -> Row | None:
    """The configuration that fits ``board_name`` nearest to (``split``'s cut, ``n_q``): fewest cuts away, then
    fewest stages away, then cheapest. None if nothing fits."""
    board = load_board(board_name)
    rows = [r for r in _rows(split, board, split.rvq.n_q, None, TASKS[split.model.task]) if r.fits]
    if not rows:
        return None
    return min(rows, key=lambda r: (abs(r.cut - split.split_layer), abs(r.n_q - n_q), r.cost))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="acom plan", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--checkpoint", type=Path, required=True, help="a split checkpoint (split.pt)")
    p.add_argument("--board", required=True, help="a board name (acom boards) or a .toml profile")
    p.add_argument("--runs", type=Path, help="folder of `acom train` runs / rate-accuracy reports to read metrics from")
    p.add_argument("--link", help="a radio link profile (boards/links: ble, lora, wifi) to add the radio's energy")
    p.add_argument("--n-q-max", type=int, help="most RVQ stages to consider (default: the checkpoint's)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--png", type=Path, help="write the Pareto plot here (written atomically)")
    return p


def main(argv: list[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    plan = make_plan(ns.checkpoint, ns.board, ns.runs, ns.n_q_max, ns.link)
    from acom.profiling.plan_report import table, write_png
    if ns.png is not None:
        write_png(plan, ns.png)
    print(json.dumps(plan.to_dict(), indent=1) if ns.json else table(plan), file=sys.stdout)
    return 0
