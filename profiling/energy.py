"""Energy per second of audio on a board and a radio link: compute + radio (+ the board's idle draw, shown apart),
for ACoM and for the codec pipelines a device could run instead. Every figure names where it came from; a
figure the profiles lack is ``None`` with the missing field named, never a guess.

Compute, from instructions (a lower bound: QEMU counts instructions, a core retires at most its issue width a
cycle): a microcontroller's share of its clock x its run-mode power (``uw_per_mhz``); a Linux board's share of
one core x one core's share of the power above idle (``(active_power_w - idle_power_w) / cores``). From MACs
(the cross-check, and the only figure for the neural codecs): MAC/s x ``energy_per_mac_pj``.
Radio: the bits on the link (acom's wire format around each payload, the link's headers) and each packet's fixed
cost (``boards/links``).
"""

from __future__ import annotations

import math
import re

from acom.boards import Board
from acom.boards.link import Link
from acom.codes.framing import Framing, framed_bps


def cores(board: Board) -> int:
    """Cores of the board ("Cortex-A72 x4" -> 4; 1 when not said)."""
    found = re.search(r"x\s*(\d+)\s*$", board.core)
    return int(found.group(1)) if found else 1


def compute_w(board: Board, instructions_per_s: float | None, width: int) -> tuple[float | None, str]:
    """(watts, how) of `instructions_per_s` on the board; None with the missing field named."""
    if instructions_per_s is None:
        return None, "unknown: not measured"
    share = instructions_per_s / width / (board.clock_mhz * 1e6)
    e = board.energy
    if board.kind == "mcu":
        if "uw_per_mhz" not in e:
            return None, f"unknown: boards/{board.name}.toml has no energy.uw_per_mhz"
        return share * board.clock_mhz * e["uw_per_mhz"].value * 1e-6, \
            f"{share:.2%} of {board.clock_mhz:g} MHz (lower bound) x {e['uw_per_mhz'].value:g} uW/MHz"
    missing = [k for k in ("active_power_w", "idle_power_w") if k not in e]
    if missing:
        return None, f"unknown: boards/{board.name}.toml has no energy.{missing[0]}"
    per_core = (e["active_power_w"].value - e["idle_power_w"].value) / cores(board)
    return share * per_core, f"{share:.2%} of one core (lower bound) x {per_core:.3g} W a core above idle"


def mac_w(board: Board, macs_per_s: float | None) -> tuple[float | None, str]:
    """(watts, how) from MACs x the board's pJ per MAC."""
    if macs_per_s is None:
        return None, "unknown: no MAC count"
    if "energy_per_mac_pj" not in board.energy:
        return None, f"unknown: boards/{board.name}.toml has no energy.energy_per_mac_pj"
    pj = board.energy["energy_per_mac_pj"].value
    return macs_per_s * pj * 1e-12, f"{macs_per_s / 1e6:.3g} M MAC/s x {pj:g} pJ/MAC"


def idle_w(board: Board) -> tuple[float | None, str]:
    """The board's idle draw, the same under every system (None for a profile without it)."""
    if board.kind == "linux" and "idle_power_w" in board.energy:
        return board.energy["idle_power_w"].value, "energy.idle_power_w"
    return None, f"unknown: boards/{board.name}.toml has no idle or sleep power figure"


def radio(link: Link, payload_bps: float, packet_s: float) -> dict:
    """The link's cost of a payload of `payload_bps` sent in acom packets of `packet_s` seconds (no key)."""
    wire_bps = framed_bps(payload_bps, 3600.0, Framing(packet_s=packet_s))
    packet_bytes = wire_bps * packet_s / 8
    link_packets = math.ceil(packet_bytes / link.max_payload_bytes) / packet_s
    return {"bps_on_wire": round(wire_bps, 1), "link_packets_per_s": round(link_packets, 3),
            "radio_w": link.joules_per_s(wire_bps, link_packets),
            "air_time_share": (wire_bps + 8 * link.overhead_bytes_per_packet * link_packets) / link.phy_bps}


def system_row(name: str, board: Board, link: Link, payload_bps: float, packet_s: float,
               compute: tuple[float | None, str], measured: str) -> dict:
    """One system's energy per second of audio on `board` over `link`."""
    r = radio(link, payload_bps, packet_s)
    total = None if compute[0] is None else compute[0] + r["radio_w"]
    return {"system": name, "payload_bps": round(payload_bps, 1), **r, "compute_w": compute[0],
            "compute_how": compute[1], "compute_figure": measured, "total_w": total}
