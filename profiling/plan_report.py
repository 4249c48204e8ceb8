"""What ``acom plan`` shows: the terminal table and the Pareto plot (matplotlib, Agg, written atomically)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from acom.errors import AcomError
from acom.profiling.plan_rows import Plan, Row

_HEAD = ("cut", "block", "n_q", "bit/s", "MAC/s", "instr/s", "clock", "flash KiB", "RAM KiB", "uJ/s", "radio uJ/s",
         "metric", "fits")


def _cells(r: Row) -> tuple[str, ...]:
    e = r.energy_uj_per_s.get("clock_share")
    metric = "no run" if r.run is None else f"{r.run['metric']} {r.run['value']:.3f}"
    return (f"{r.cut}{'' if r.own_cut else '*'}", r.block, str(r.n_q), f"{r.bps:.0f}", f"{r.macs['total'] / 1e6:.2f}M",
            "-" if r.instructions_per_s is None else f"{r.instructions_per_s / 1e6:.1f}M",
            "-" if r.clock_share is None else f"{r.clock_share:.1%}", f"{r.flash_bytes / 1024:.0f}",
            f"{r.ram_bytes / 1024:.0f}", "-" if e is None else f"{e:.0f}",
            "-" if r.radio is None else f"{r.radio['radio_w'] * 1e6:.0f}", metric,
            ("yes" if r.fits else "no: " + "; ".join(r.over)) + (" [front]" if r.front else ""))


def table(plan: Plan) -> str:
    """The plan as aligned text: a header, one row per configuration, the notes and the recommendation."""
    b = plan.board
    rows = [_HEAD] + [_cells(r) for r in plan.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEAD) - 1)]
    lines = [f"acom plan: {plan.checkpoint} ({plan.task}) on {b['name']} ({b['core']}, {b['clock_mhz']:g} MHz; "
             f"budgets RAM {b['model_ram_budget_kib']} KiB, flash {b['model_flash_budget_kib']} KiB, "
             f"{b['macs_per_s_budget'] / 1e6:g} M MAC/s), {b['window_s']:g} s window, {plan.seconds:.1f} s",
             "  * the RVQ would be retrained at this cut; per second of audio: MAC/s, instructions, clock share, "
             "energy (uJ)"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in rows]
    lines += [f"Pareto front over {', '.join(plan.front_axes)}: "
              + ", ".join(r.name() for r in plan.rows if r.front)]
    lines += [f"note: {n}" for n in plan.notes]
    lines += [f"recommendation: {plan.recommendation}"]
    return "\n".join(lines)


def write_png(plan: Plan, path: Path) -> None:
    """Two panels: MAC/s (or energy) against bit/s, and flash against RAM with the board's budgets; the front
    circled, what does not fit in grey. Written to a temporary file beside ``path``, then renamed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if not path.parent.is_dir():
        raise AcomError(f"--png {path}: folder {path.parent} does not exist")
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 5))
    energy = all(r.energy_uj_per_s.get("clock_share") is not None for r in plan.rows)
    for r in plan.rows:
        color = "tab:green" if r.fits else "0.6"
        y = r.energy_uj_per_s["clock_share"] / 1e3 if energy else r.macs["total"] / 1e6
        a.scatter(r.bps, y, c=color, s=60 if r.front else 25, edgecolors="k" if r.front else "none")
        a.annotate(f"L{r.cut}q{r.n_q}", (r.bps, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        b.scatter(r.ram_bytes / 1024, r.flash_bytes / 1024, c=color, s=60 if r.front else 25,
                  edgecolors="k" if r.front else "none")
        b.annotate(f"L{r.cut}q{r.n_q}", (r.ram_bytes / 1024, r.flash_bytes / 1024), fontsize=7, xytext=(3, 3),
                   textcoords="offset points")
    board = plan.board
    a.set(xlabel="nominal bit/s", ylabel="mJ per second of audio (clock share)" if energy else "M MAC per second",
          title=f"{plan.task} on {board['name']}: green fits, ringed: Pareto front")
    b.axvline(board["model_ram_budget_kib"], color="tab:red", ls="--", lw=1)
    b.axhline(board["model_flash_budget_kib"], color="tab:red", ls="--", lw=1)
    b.set(xlabel="RAM KiB (estimated)", ylabel="flash KiB (estimated)", xscale="log", yscale="log",
          title="footprint vs budgets (dashed)")
    fig.text(0.01, 0.01, "estimates without lowering (acom plan); shipped models are demonstrations trained on "
             "synthetic data", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
