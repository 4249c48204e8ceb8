"""`acom boards`: list the board profiles that `acom-export --board` accepts, or show one in detail."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from acom.boards import Board, all_boards, known_boards, load_board

COLUMNS = ("name", "kind", "core", "clock", "RAM", "flash", "runtimes", "transports", "emulator")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="acom boards", description=__doc__,
        epilog="Known boards: " + ", ".join(known_boards()) + ". Profiles live in acom/boards/NAME.toml; "
        "NAME may also be a path to a .toml profile of your own, which is validated the same way. "
        "Unknown or malformed boards exit with code 2.")
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="a board name or a path to a .toml profile: show it in detail (default: table of all boards)")
    p.add_argument("--json", action="store_true",
                   help="print JSON: a list of all boards, or one board's object when NAME is given")
    return p


def main(argv: list[str] | None = None) -> int:
    """Print the boards table, one board's details, or JSON. Raises ExportError for a bad NAME."""
    ns = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    out = sys.stdout
    if ns.name is None:
        boards = all_boards()
        if ns.json:
            print(json.dumps([b.to_dict() for b in boards], indent=2), file=out)
        else:
            print_table(boards, out)
        return 0
    board = load_board(ns.name)
    if ns.json:
        print(json.dumps(board.to_dict(), indent=2), file=out)
    else:
        print_details(board, out)
    return 0


def size(kib: int) -> str:
    """KiB as a short human size: 512 KiB, 2 MiB, 16 GiB."""
    for unit, scale in (("GiB", 1 << 20), ("MiB", 1 << 10)):
        if kib >= scale:
            value = kib / scale
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{kib} KiB"


def _row(b: Board) -> tuple[str, ...]:
    return (b.name, b.kind, b.core, f"{b.clock_mhz:g} MHz", size(b.ram_kib), size(b.flash_kib),
            ",".join(b.runtimes), ",".join(b.transports), b.emulator.command())


def print_table(boards: list[Board], out: TextIO) -> None:
    """One line per board under a header, columns aligned."""
    rows = [COLUMNS] + [_row(b) for b in boards]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip(), file=out)


def print_details(b: Board, out: TextIO) -> None:
    """Every field of one board, then its energy figures with their sources."""
    lines = [
        ("name", b.name), ("description", b.description), ("kind", b.kind), ("core", b.core),
        ("clock", f"{b.clock_mhz:g} MHz"), ("RAM", size(b.ram_kib)), ("flash", size(b.flash_kib)),
        ("runtimes", ", ".join(b.runtimes)), ("transports", ", ".join(b.transports)),
        ("frontend", b.frontend + (" (log-mel inside the graph)" if b.frontend == "graph"
                                   else " (firmware computes log-mel; graph starts from features)")),
        ("window", f"{b.window_s:g} s"), ("model RAM budget", size(b.model_ram_budget_kib)),
        ("model flash budget", size(b.model_flash_budget_kib)),
        ("MAC budget", f"{b.macs_per_s_budget:,} MAC per second of audio"),
        ("npu", "none" if b.npu is None else
         f"{b.npu.accelerator} (vela system config {b.npu.system_config}, memory mode {b.npu.memory_mode})"),
        ("emulator", f"{b.emulator.command()} ({b.emulator.mode} mode, cpu {b.emulator.cpu}, "
                     f"toolchain {b.emulator.toolchain})"),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}", file=out)
    print("energy:", file=out)
    for key, fig in b.energy.items():
        tag = " (estimate)" if fig.estimate else ""
        print(f"  {key} = {fig.value:g}{tag}\n      source: {fig.source}", file=out)


if __name__ == "__main__":
    sys.exit(main())
