"""Radio link profiles (``boards/links/NAME.toml``): what sending bits costs, each figure with its source.

The energy of a second of audio on the air is ``bits on the link x energy_per_bit_j`` plus ``packets x
energy_per_packet_j`` (wake-up, preamble, the peer's acknowledgement); a link's own headers add
``overhead_bytes_per_packet``. Used by `acom profile` and `acom plan`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

from acom.boards import BOARDS_DIR, Figure
from acom.errors import ExportError

LINKS_DIR = BOARDS_DIR / "links"


@dataclass(frozen=True, kw_only=True)
class Link:
    name: str
    description: str
    phy_bps: float
    """Bit rate on the air."""
    max_payload_bytes: int
    """The most bytes one link packet carries."""
    overhead_bytes_per_packet: int
    """The link's own headers and checks per packet, on the air."""
    energy_per_bit_j: Figure
    energy_per_packet_j: Figure

    def joules_per_s(self, payload_bps: float, packets_per_s: float) -> float:
        """Radio energy per second for `payload_bps` bits of packets (ours, headers included) in
        `packets_per_s` link packets: bits and link headers on the air, plus each packet's fixed cost."""
        bits = payload_bps + 8 * self.overhead_bytes_per_packet * packets_per_s
        return bits * self.energy_per_bit_j.value + packets_per_s * self.energy_per_packet_j.value


def known_links() -> list[str]:
    return sorted(p.stem for p in LINKS_DIR.glob("*.toml"))


def load_link(name: str) -> Link:
    """A shipped link by name; ExportError naming the field that is missing or wrong."""
    path = LINKS_DIR / f"{name}.toml"
    if not path.is_file():
        raise ExportError(f"unknown link {name!r}; known links: {', '.join(known_links())}")
    data = tomllib.loads(path.read_text())

    def need(table: dict, key: str, kind: type, where: str):
        if key not in table:
            raise ExportError(f"link file {path}: field '{where}{key}' missing (required)")
        value = table[key]
        if not isinstance(value, kind) or isinstance(value, bool) or (kind not in (str, dict) and not value > 0):
            what = getattr(kind, "__name__", "number")
            raise ExportError(f"link file {path}: field '{where}{key}': expected a positive {what}, got {value!r}")
        return value

    def figure(key: str) -> Figure:
        table = need(data, key, dict, "")
        est = table.get("estimate")
        if not isinstance(est, bool):
            raise ExportError(f"link file {path}: field '{key}.estimate': expected true or false")
        return Figure(value=float(need(table, "value", (int, float), f"{key}.")),
                      source=need(table, "source", str, f"{key}."), estimate=est)

    return Link(name=need(data, "name", str, ""), description=need(data, "description", str, ""),
                phy_bps=float(need(data, "phy_bps", (int, float), "")),
                max_payload_bytes=need(data, "max_payload_bytes", int, ""),
                overhead_bytes_per_packet=need(data, "overhead_bytes_per_packet", int, ""),
                energy_per_bit_j=figure("energy_per_bit_j"), energy_per_packet_j=figure("energy_per_packet_j"))
